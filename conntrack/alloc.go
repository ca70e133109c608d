package conntrack

import "sync/atomic"

const (
	maxShards       = 64
	minShardEntries = 256
)

// shard is one cache line: a slice of the arena with its free list, and
// the insert-side counters of the flows whose Orig hash picks it.
//
// Free entries are taken first from head, a Treiber stack of recycled
// entries linked through their state words (the top 32 bits of head are an
// ABA tag bumped by every push and pop), then from bump, the next entry of
// [lo, hi) never used yet. Workers pop (CAS); only Sweep pushes.
type shard struct {
	head     atomic.Uint64 // tag<<32 | index+1 of the top free entry; 0 index: empty
	bump     atomic.Uint32 // next never-used index in [lo, hi)
	lo, hi   uint32        // read-only after New
	_        uint32
	inserted atomic.Uint64
	refused  atomic.Uint64
	exists   atomic.Uint64
	expired  atomic.Uint64 // expired flows removed by Insert
	clashes  atomic.Uint64
}

func (t *Table[K]) shardOf(h uint64) uint32 { return uint32(h>>20) & t.smask }

// alloc takes a free entry, trying shard s first and then the others in
// turn. It fails only when every shard is exhausted.
func (t *Table[K]) alloc(s uint32) (uint32, bool) {
	for i := uint32(0); i <= t.smask; i++ {
		if idx, ok := t.pop(&t.shards[(s+i)&t.smask]); ok {
			return idx, true
		}
	}
	return 0, false
}

func (t *Table[K]) pop(sh *shard) (uint32, bool) {
	for {
		h := sh.head.Load()
		top := uint32(h)
		if top == 0 {
			break
		}
		// If top is popped and reused meanwhile, its word no longer holds
		// a link, but the tag changed too and the CAS fails.
		next := wordLink(t.arena[top-1].word.Load())
		if sh.head.CompareAndSwap(h, (h>>32+1)<<32|uint64(next)) {
			if next != 0 && t.prefetch {
				// The next insert from this shard writes this entry:
				// start its cache miss now (BenchmarkInsert/1M went from
				// about 370 to 255 ns with this and the reply-bucket
				// prefetch in insert).
				prefetch(addrOf(&t.arena[next-1]))
			}
			return top - 1, true
		}
	}
	for {
		b := sh.bump.Load()
		if b >= sh.hi {
			return 0, false
		}
		if sh.bump.CompareAndSwap(b, b+1) {
			return b, true
		}
	}
}

// push returns entry idx to its shard's free list. Only Sweep calls it.
func (t *Table[K]) push(idx uint32) {
	sh := &t.shards[idx/t.per]
	w := &t.arena[idx].word
	for {
		h := sh.head.Load()
		w.Store(linkWord(kindFree, uint32(h)))
		if sh.head.CompareAndSwap(h, (h>>32+1)<<32|uint64(idx+1)) {
			return
		}
	}
}

// orphan hands a killed or abandoned entry to Sweep, which reports it (kind
// kindOrphanExpired) and retires it. Any goroutine may call it; Sweep takes
// the whole stack at once, so pushes have no ABA problem.
func (t *Table[K]) orphan(idx uint32, kind uint64) {
	w := &t.arena[idx].word
	for {
		h := t.orphans.Load()
		w.Store(linkWord(kind, uint32(h)))
		if t.orphans.CompareAndSwap(h, uint64(idx+1)) {
			return
		}
	}
}
