package conntrack

import "sync/atomic"

const (
	cacheLine      = 64
	slotsPerBucket = 7
	// Buckets are sized for two keys per flow at no more than maxLoadNum/
	// maxLoadDen of the slots when the table is full.
	maxLoadNum, maxLoadDen = 3, 4

	// A slot is tag<<32 | dir<<31 | (entry index + 1); 0 is empty. The tag
	// is the top 32 bits of the hash with the top bit forced on, so an
	// empty slot never matches a tag.
	tagBit   = 1 << 31
	dirBit   = 1 << 31
	idxMask  = 1<<31 - 1
	slotMiss = 1 // LookupBatch's marker for "not in the home bucket, keep probing"; no slot has a zero tag
)

// bucket is one cache line of the index: seven slots and the overflow
// count. ovf counts the keys stored further along the probe sequence
// whose probe passed this bucket because it was full; a lookup stops at
// the first bucket (after checking its slots) whose ovf is zero. Removing
// a key clears its slot and decrements ovf on the buckets it passed, so
// there are no tombstones. All fields are accessed atomically: Insert
// (any worker) sets slots with CAS and increments ovf before placing a key
// further on; removal (Sweep, or a worker replacing an expired flow)
// clears slots with CAS and then decrements.
type bucket struct {
	ovf  atomic.Uint64
	slot [slotsPerBucket]atomic.Uint64
}

// indexBuckets returns the number of buckets for maxFlows flows: a power
// of two with at least 2*maxFlows / (7 * 3/4) buckets.
func indexBuckets(maxFlows int) int {
	keys := 2 * maxFlows
	need := (keys*maxLoadDen + slotsPerBucket*maxLoadNum - 1) / (slotsPerBucket * maxLoadNum)
	n := 1
	for n < need {
		n *= 2
	}
	return n
}

func tagOf(h uint64) uint32 { return uint32(h>>32) | tagBit }

func slotVal(h uint64, idx uint32, d Dir) uint64 {
	return uint64(tagOf(h))<<32 | uint64(d)<<31 | uint64(idx+1)
}

func slotIdx(v uint64) uint32 { return uint32(v)&idxMask - 1 }
func slotDir(v uint64) Dir    { return Dir(uint32(v) >> 31) }

// The probe sequence visits home, home+1, home+3, home+6, ... (triangular
// numbers), which covers every bucket of a power-of-two table.

// place stores slot value v for hash h in the first empty slot of the
// probe sequence and returns its position (step*8 + slot), or -1 when
// every bucket is full (impossible at the configured load; kept as a
// guard).
func (t *Table[K]) place(h, v uint64) int {
	b := h & t.mask
	for i := uint64(0); i <= t.mask; i++ {
		bk := &t.buckets[b]
		for s := range bk.slot {
			if bk.slot[s].Load() == 0 && bk.slot[s].CompareAndSwap(0, v) {
				return int(i)*8 + s
			}
		}
		// Count the pass before storing further on, so that a lookup
		// that finds ovf == 0 here never misses a key placed later.
		bk.ovf.Add(1)
		b = (b + i + 1) & t.mask
	}
	t.decPath(h, int(t.mask)+1)
	return -1
}

// decPath decrements ovf on the first steps buckets of h's probe sequence.
func (t *Table[K]) decPath(h uint64, steps int) {
	b := h & t.mask
	for i := 0; i < steps; i++ {
		t.buckets[b].ovf.Add(^uint64(0))
		b = (b + uint64(i) + 1) & t.mask
	}
}

// unlink removes slot value v from h's probe sequence. It reports whether
// this call removed it (false: not found, or another goroutine removed it
// first, in which case that goroutine fixed the overflow counts).
func (t *Table[K]) unlink(h, v uint64) bool {
	b := h & t.mask
	for i := 0; i <= int(t.mask); i++ {
		bk := &t.buckets[b]
		for s := range bk.slot {
			if bk.slot[s].Load() == v {
				if !bk.slot[s].CompareAndSwap(v, 0) {
					return false
				}
				t.decPath(h, i)
				return true
			}
		}
		if bk.ovf.Load() == 0 {
			return false
		}
		b = (b + uint64(i) + 1) & t.mask
	}
	return false
}

// unlinkEntry removes both keys of entry idx from the index.
func (t *Table[K]) unlinkEntry(e *Entry[K], idx uint32) {
	h := t.Hash(&e.flow.Orig)
	t.unlink(h, slotVal(h, idx, DirOriginal))
	if e.flow.HasReply {
		h = t.Hash(&e.flow.Reply)
		t.unlink(h, slotVal(h, idx, DirReply))
	}
}

// entryAt returns the entry a slot value points to.
func (t *Table[K]) entryAt(v uint64) *Entry[K] { return &t.arena[slotIdx(v)] }
