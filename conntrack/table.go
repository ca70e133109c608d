package conntrack

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"
)

// Time is a point on a monotonic clock chosen by the caller, in
// nanoseconds. The table keeps deadlines as uint32 seconds of this clock,
// so Time must stay within [0, 2^32 s) (136 years: a clock that starts at
// boot or at process start, or Unix time until 2106). Read the clock once
// per batch and pass the same value to every call of the batch.
type Time int64

// Errors returned by Insert and Import.
var (
	// ErrFull: no free entry. The flow is refused and counted in
	// Stats.Refused; live flows are never evicted to make room.
	ErrFull = errors.New("conntrack: table full")
	// ErrExists: a live (or being inserted) flow already has the Orig key;
	// Insert returns it.
	ErrExists = errors.New("conntrack: flow exists")
	// ErrReplyExists: the Reply key of a full-NAT flow is already indexed
	// (another flow's Orig or Reply). Insert returns that flow. The
	// dataplane picks another NAT port. errors.Is(ErrReplyExists, ErrExists).
	ErrReplyExists = fmt.Errorf("%w: reply tuple in use", ErrExists)
	// ErrInvalid: the flow, state, or record is not one the table can hold.
	ErrInvalid = errors.New("conntrack: invalid flow")
)

// prefetchMinBytes is the index plus arena size from which prefetching
// pays (see Table.prefetch).
const prefetchMinBytes = 8 << 20

// maxTimeout bounds the configured timeouts so that deadlines fit their
// 32-bit seconds with room for the clock itself.
const maxTimeout = 365 * 24 * time.Hour

// MaxBatch is the largest batch LookupBatch works on at once; longer
// slices are processed MaxBatch keys at a time.
const MaxBatch = 64

// MaxFlowsLimit is the largest Config.MaxFlows (index slots hold a 31-bit
// entry number).
const MaxFlowsLimit = 1<<31 - 2

// Config sizes a Table. The zero value is not usable: MaxFlows is required.
type Config struct {
	// MaxFlows is the fixed capacity; all memory is allocated once in New.
	// Every flow may be indexed under two keys (full NAT).
	MaxFlows int
	// Timeouts per state; zero fields take DefaultTimeouts values.
	Timeouts Timeouts
	// Seed for the table's own hash; 0 means pick one with crypto/rand.
	Seed uint64
	// HugePages asks Linux to back the arena and the index with
	// transparent huge pages (madvise MADV_HUGEPAGE). It is off by
	// default: on the 2-core EPYC test VM, 10M-flow LookupBatch measured
	// the same with and without (53-70 vs 58-73 ns per key, thread CPU,
	// alternating runs), as its large TLB and cached page walks absorb the
	// misses; CPUs with smaller TLBs may gain. The cost is RSS: memory
	// touched is backed 2 MiB at a time, so a big, mostly empty table
	// shows up nearly whole (the index is touched at random).
	HugePages bool
}

// Flow is what the dataplane records about a connection. A Flow is copied
// into the table by Insert and is immutable once inserted: the pointer from
// Entry.Flow is for reading only.
type Flow[K Key] struct {
	Orig           K      // always indexed, lookups of it return DirOriginal
	Reply          K      // indexed when HasReply
	HasReply       bool   // full NAT: the reply tuple is indexed too, lookups of it return DirReply
	OneWay         bool   // dsr/ipip: only Orig packets are ever seen; drives the TCP state machine
	Service        uint32 // opaque to conntrack (dataplane indexes)
	Backend        uint32
	Local          uint16 // opaque: index of the NAT local address
	Owner          uint16 // opaque: worker that allocated the NAT port
	PersistTimeout uint32 // seconds; the timeout of a StatePersist entry
}

// Entry is one slot of the table's arena: a Flow plus an atomic word with
// its state and deadline.
//
// An *Entry returned by Lookup, LookupBatch or Insert may be used only until
// the calling worker's Reader.End: after that Sweep may reuse its memory
// for another flow. The flow is immutable while the entry is live; the
// state word is changed only with compare-and-swap (Track, Sweep, Insert,
// Import).
type Entry[K Key] struct {
	// word, when the low byte (State) is nonzero: the entry is live;
	// bits 8-15 hold TCP FIN bits, bits 32-63 the deadline in seconds.
	// When the low byte is zero: bits 8-15 say which list or phase the
	// entry is in (kind*), bits 32-63 link to the next entry (index+1).
	// Written by Insert (the allocating worker), Track (any worker, CAS),
	// Sweep (CAS), Import.
	word atomic.Uint64
	// flow is written by Insert or Import before the entry is published,
	// then only read until the entry is reclaimed.
	flow Flow[K]
}

// Flow returns the entry's flow. Do not modify it.
func (e *Entry[K]) Flow() *Flow[K] { return &e.flow }

// State returns the flow's state, or StateNone when the entry is no longer
// (or not yet) live. A live state may still be past its deadline; Track
// tells.
func (e *Entry[K]) State() State { return State(e.word.Load()) }

// key returns the entry's key for direction d.
func (e *Entry[K]) key(d Dir) *K {
	if d == DirReply {
		return &e.flow.Reply
	}
	return &e.flow.Orig
}

// Ref is the result of a lookup: the entry and the direction the looked-up
// key has in its flow. E == nil means a miss.
type Ref[K Key] struct {
	E   *Entry[K]
	Dir Dir
}

// Word encoding, see Entry.word.
const (
	kindShift = 8
	linkShift = 32

	kindUnused        = 0 << kindShift // never allocated
	kindFree          = 1 << kindShift // on a free list
	kindPending       = 2 << kindShift // allocated, being published by Insert/Import
	kindDead          = 3 << kindShift // killed; its killer is removing its keys
	kindOrphanExpired = 4 << kindShift // killed by Insert/Import, waiting for Sweep to report and retire it
	kindOrphanAborted = 5 << kindShift // insert abandoned, waiting for Sweep to retire it
	kindRetired       = 6 << kindShift // waiting for the readers' grace period
	kindMask          = 0xff << kindShift
)

func liveWord(st State, fb uint8, dl uint32) uint64 {
	return uint64(dl)<<linkShift | uint64(fb)<<kindShift | uint64(st)
}

func isLive(w uint64) bool         { return uint8(w) != 0 }
func wordFin(w uint64) uint8       { return uint8(w >> kindShift) }
func wordDeadline(w uint64) uint32 { return uint32(w >> linkShift) }
func wordKind(w uint64) uint64     { return w & kindMask }
func wordLink(w uint64) uint32     { return uint32(w >> linkShift) }
func linkWord(kind uint64, next uint32) uint64 {
	return uint64(next)<<linkShift | kind
}

// expiredAt reports whether a live word's deadline has passed at now.
func expiredAt(w uint64, now Time) bool {
	return int64(now) >= int64(wordDeadline(w))*int64(time.Second)
}

// deadlineAfter returns the deadline, in whole seconds rounded up, of a
// timeout d (nanoseconds) starting at now.
func deadlineAfter(now Time, d int64) uint32 {
	return uint32((int64(now) + d + int64(time.Second) - 1) / int64(time.Second))
}

// Table is the connection table: a fixed arena of entries and an
// open-addressing index over it, shared by all dataplane workers.
//
// Concurrency: Lookup, LookupBatch, Insert and Track may be called by any
// number of goroutines at once, each between Begin and End of its own
// Reader; they take no locks. Sweep is called by one goroutine at a time
// (it serializes itself with a mutex). Range, RangeAt, Import and Stats
// may be called from any goroutine at any time. See the package doc for
// the memory layout and the reclamation scheme.
//
// The zero value is not usable; create tables with New.
type Table[K Key] struct {
	buckets []bucket // len is a power of two
	mask    uint64   // len(buckets) - 1
	arena   []Entry[K]
	shards  []shard
	smask   uint32 // len(shards) - 1
	per     uint32 // arena entries per shard
	seed    hasher
	tmo     [16]int64 // timeout in ns by State (StatePersist: per flow)
	// prefetch: the table is too big to stay in cache, so the hot paths
	// issue prefetches. Below prefetchMinBytes the prefetches cost more
	// than they save (LookupBatch, thread CPU per key on this machine: 10k
	// flows 32 ns with, 26 ns without; 30k 37/35; 100k 33/33-38; 300k
	// 41/58; 1M and up, see BenchmarkLookupBatch).
	prefetch bool

	orphans atomic.Uint64 // stack of orphaned entries (index+1): pushed by workers, drained by Sweep

	ep *epochs
	sw sweeper

	lastNow  atomic.Int64  // now of the last Sweep or Import; Range measures Remaining from it
	imported atomic.Uint64 // Import installed a new entry
	updated  atomic.Uint64 // Import refreshed an identical flow in place
	replaced atomic.Uint64 // Import killed a different flow holding one of its keys

	ctrl ctrlReader // Import's reader
}

// Table4 and Table6 are the IPv4 and IPv6 tables.
type (
	Table4 = Table[Key4]
	Table6 = Table[Key6]
)

// New allocates a table for cfg.MaxFlows flows. All memory is allocated
// here; nothing grows later. Fresh pages are touched only as flows use
// them, so RSS grows towards the full size (about 91 bytes per IPv4
// full-NAT flow, 139 for IPv6) as the table fills.
func New[K Key](cfg Config) (*Table[K], error) {
	if cfg.MaxFlows < 1 || cfg.MaxFlows > MaxFlowsLimit {
		return nil, fmt.Errorf("conntrack: MaxFlows %d out of range [1, %d]", cfg.MaxFlows, MaxFlowsLimit)
	}
	to := cfg.Timeouts.byState()
	for s := StateSynSent; s < StatePersist; s++ {
		if to[s] < 0 || to[s] > maxTimeout {
			return nil, fmt.Errorf("conntrack: timeout for %v: %v out of range [0, %v]", s, to[s], maxTimeout)
		}
	}
	seed := cfg.Seed
	if seed == 0 {
		var b [8]byte
		if _, err := rand.Read(b[:]); err != nil {
			return nil, fmt.Errorf("conntrack: seed: %w", err)
		}
		seed = binary.LittleEndian.Uint64(b[:]) | 1
	}

	t := &Table[K]{seed: newHasher(seed), ep: newEpochs()}
	for s := range to {
		t.tmo[s] = int64(to[s])
	}

	nb := indexBuckets(cfg.MaxFlows)
	t.buckets = makeAligned[bucket](nb)
	t.mask = uint64(nb - 1)
	t.arena = makeAligned[Entry[K]](cfg.MaxFlows)
	t.prefetch = nb*cacheLine+cfg.MaxFlows*int(unsafeSizeofEntry[K]()) >= prefetchMinBytes
	if cfg.HugePages {
		adviseHuge(t.buckets)
		adviseHuge(t.arena)
	}

	ns := 1
	for ns < maxShards && ns*2*minShardEntries <= cfg.MaxFlows {
		ns *= 2
	}
	t.shards = makeAligned[shard](ns)
	t.smask = uint32(ns - 1)
	t.per = uint32((cfg.MaxFlows + ns - 1) / ns)
	for i := range t.shards {
		sh := &t.shards[i]
		sh.lo = min(uint32(i)*t.per, uint32(cfg.MaxFlows))
		sh.hi = min(sh.lo+t.per, uint32(cfg.MaxFlows))
		sh.bump.Store(sh.lo)
	}
	t.ctrl.r = t.NewReader()
	return t, nil
}

// Hash returns the table's hash of k (seeded; not stable across tables).
func (t *Table[K]) Hash(k *K) uint64 { return hashKey(&t.seed, k) }

// Capacity returns Config.MaxFlows.
func (t *Table[K]) Capacity() int { return len(t.arena) }

// Stats are the table's counters. Reading them sums per-shard counters
// and is not atomic as a whole; it is meant for the control plane.
type Stats struct {
	Capacity   int    // Config.MaxFlows
	Live       int    // flows inserted or imported and not yet expired, replaced, or aborted
	Inserted   uint64 // Insert succeeded
	Refused    uint64 // Insert or Import found no free entry (ErrFull)
	Exists     uint64 // Insert found the key (ErrExists, ErrReplyExists)
	Expired    uint64 // flows removed on timeout (by Sweep, or by Insert finding them expired)
	Clashes    uint64 // concurrent inserts of one key resolved to one entry
	Imported   uint64 // Import installed a flow
	Updated    uint64 // Import refreshed an identical live flow in place
	Replaced   uint64 // Import removed a different live flow holding its keys
	Reclaiming int    // removed entries waiting for the readers' grace period
	Buckets    int    // index buckets (64 bytes each)
	Epoch      uint64 // reclamation epoch (advances once per Sweep)
}

// Stats returns the counters.
func (t *Table[K]) Stats() Stats {
	s := Stats{
		Capacity: len(t.arena),
		Buckets:  len(t.buckets),
		Imported: t.imported.Load(),
		Updated:  t.updated.Load(),
		Replaced: t.replaced.Load(),
		Expired:  t.sw.expired.Load(),
		Epoch:    t.ep.global.Load(),
	}
	for i := range t.shards {
		sh := &t.shards[i]
		s.Inserted += sh.inserted.Load()
		s.Refused += sh.refused.Load()
		s.Exists += sh.exists.Load()
		s.Expired += sh.expired.Load()
		s.Clashes += sh.clashes.Load()
	}
	s.Reclaiming = int(t.sw.pending.Load())
	live := int64(s.Inserted+s.Imported) - int64(s.Expired+s.Replaced)
	s.Live = int(max(live, 0))
	return s
}
