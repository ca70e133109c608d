package conntrack

import (
	"sync"
	"sync/atomic"
)

// retireRing is the number of Sweep calls whose removed entries can wait
// for the grace period separately; beyond that they are merged into the
// newest batch (which only delays their reuse).
const retireRing = 64

// batch is the entries retired by one Sweep call, linked through their
// state words, reusable once no reader is still inside a batch begun at
// or before epoch.
type batch struct {
	epoch      uint64
	head, tail uint32 // index+1
	n          int
}

// sweeper is Sweep's state; mu makes concurrent Sweep calls take turns.
type sweeper struct {
	mu     sync.Mutex
	cursor uint32 // next arena index to examine
	ring   [retireRing]batch
	first  int
	count  int

	pending atomic.Int64  // entries retired and not yet freed (Stats.Reclaiming)
	expired atomic.Uint64 // flows expired by Sweep
}

// Sweep expires flows whose deadline has passed at now, examining up to
// budget entries of the arena from where the previous call stopped (it
// wraps around; unused parts of the arena are skipped cheaply). For each
// flow that leaves the table it removes the flow's keys from the index,
// then calls expired(f) (if not nil) before the entry can be reused; f is
// valid only during the call. This includes flows that Insert found
// expired and flows Import replaced: Sweep reports those too. It returns
// the number of expired calls it made.
//
// Sweep also reclaims entries removed earlier once every Reader has
// passed through a quiescent point (End) since, then advances the epoch.
// Workers are never stopped; Sweep is meant to run every 100 ms or so on a
// goroutine of its own, with a budget that covers the arena every second
// or two (Capacity()/10 per call at 100 ms). Calls are serialized; the
// callback must not call Sweep.
func (t *Table[K]) Sweep(now Time, budget int, expired func(*Flow[K])) int {
	sw := &t.sw
	sw.mu.Lock()
	defer sw.mu.Unlock()
	t.lastNow.Store(int64(now))
	t.reclaim()

	var cur batch
	n := 0
	for o := uint32(t.orphans.Swap(0)); o != 0; {
		idx := o - 1
		e := &t.arena[idx]
		w := e.word.Load()
		o = wordLink(w)
		if wordKind(w) == kindOrphanExpired {
			if expired != nil {
				expired(&e.flow)
			}
			n++
		}
		t.retire(&cur, idx)
	}

	size := uint32(len(t.arena))
	c := sw.cursor
	for scanned := 0; scanned < budget; scanned++ {
		if c >= size {
			c = 0
		}
		sh := &t.shards[c/t.per]
		if c >= min(sh.bump.Load(), sh.hi) {
			c = sh.hi // the rest of this shard was never used
			continue
		}
		e := &t.arena[c]
		w := e.word.Load()
		if isLive(w) && expiredAt(w, now) && e.word.CompareAndSwap(w, linkWord(kindDead, 0)) {
			t.unlinkEntry(e, c)
			if expired != nil {
				expired(&e.flow)
			}
			t.retire(&cur, c)
			sw.expired.Add(1)
			n++
		}
		c++
	}
	sw.cursor = c

	t.closeBatch(&cur)
	t.ep.global.Add(1)
	return n
}

// retire adds a removed entry to the batch being built.
func (t *Table[K]) retire(b *batch, idx uint32) {
	t.arena[idx].word.Store(linkWord(kindRetired, b.head))
	b.head = idx + 1
	if b.tail == 0 {
		b.tail = idx + 1
	}
	b.n++
	t.sw.pending.Add(1)
}

// closeBatch stamps b with the current epoch (all its entries are already
// out of the index) and queues it.
func (t *Table[K]) closeBatch(b *batch) {
	if b.n == 0 {
		return
	}
	sw := &t.sw
	b.epoch = t.ep.global.Load()
	if sw.count == retireRing {
		last := &sw.ring[(sw.first+sw.count-1)%retireRing]
		t.arena[b.tail-1].word.Store(linkWord(kindRetired, last.head))
		last.head = b.head
		last.n += b.n
		last.epoch = b.epoch
		return
	}
	sw.ring[(sw.first+sw.count)%retireRing] = *b
	sw.count++
}

// reclaim frees the batches retired before the oldest epoch at which a
// reader still inside Begin/End began.
func (t *Table[K]) reclaim() {
	sw := &t.sw
	min := t.ep.minActive()
	for sw.count > 0 && sw.ring[sw.first].epoch < min {
		b := &sw.ring[sw.first]
		for o := b.head; o != 0; {
			idx := o - 1
			o = wordLink(t.arena[idx].word.Load())
			t.push(idx)
		}
		sw.pending.Add(-int64(b.n))
		*b = batch{}
		sw.first = (sw.first + 1) % retireRing
		sw.count--
	}
}
