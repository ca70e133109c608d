package conntrack

import "time"

// Record is a flow as seen from outside the table: for `show conntrack`
// and for streaming to an HA peer (Range on one side, Import on the
// other).
type Record[K Key] struct {
	Flow      Flow[K]
	State     State
	Remaining time.Duration // until the flow expires if it sees no packet
}

// Range calls fn for each live flow, measuring Remaining from the now of
// the most recent Sweep or Import, until fn returns false. See RangeAt.
func (t *Table[K]) Range(fn func(Record[K]) bool) {
	t.RangeAt(Time(t.lastNow.Load()), fn)
}

// RangeAt calls fn for each flow live at now, in arena order, until fn
// returns false. It is safe while workers run: it copies up to 64 records
// at a time inside a reader bracket of its own and calls fn outside it,
// so a slow fn never holds back reclamation. Flows inserted or removed
// during the walk may or may not be seen; no flow is seen twice unless it
// is removed and re-inserted meanwhile. Control path: it allocates a
// Reader.
func (t *Table[K]) RangeAt(now Time, fn func(Record[K]) bool) {
	r := t.NewReader()
	defer r.Close()
	var buf [64]Record[K]
	for si := range t.shards {
		sh := &t.shards[si]
		end := min(sh.bump.Load(), sh.hi)
		for i := sh.lo; i < end; {
			n := 0
			r.Begin()
			for ; i < end && n < len(buf); i++ {
				e := &t.arena[i]
				w := e.word.Load()
				if !isLive(w) || expiredAt(w, now) {
					continue
				}
				buf[n] = Record[K]{
					Flow:      e.flow,
					State:     State(w),
					Remaining: time.Duration(int64(wordDeadline(w))*int64(time.Second) - int64(now)),
				}
				n++
			}
			r.End()
			for j := range n {
				if !fn(buf[j]) {
					return
				}
			}
		}
	}
}

// Import installs a record received from an HA peer, with Remaining
// counted from now. A live flow with the same Orig and identical Flow
// fields is refreshed in place (state and deadline); any other live flow
// holding the record's Orig or Reply key is replaced (and reported by
// Sweep's callback). It refuses with ErrFull when no entry is free, with
// ErrExists when a worker is inserting the same key at this moment, and
// with ErrInvalid for a record Insert would refuse or whose Remaining is
// not positive. TCP FIN bits are not part of a Record: an imported FinWait
// flow waits for both FINs again.
//
// Control path: any goroutine; Import calls are serialized with each
// other, never with the workers.
func (t *Table[K]) Import(r Record[K], now Time) error {
	st, ok := t.checkFlow(&r.Flow, r.State)
	if !ok || r.Remaining <= 0 {
		return ErrInvalid
	}
	dl := deadlineAfter(now, int64(r.Remaining))
	c := &t.ctrl
	c.mu.Lock()
	defer c.mu.Unlock()
	t.lastNow.Store(int64(now))
	c.r.Begin()
	defer c.r.End()

	if ref := t.Lookup(&r.Flow.Orig); ref.E != nil && ref.Dir == DirOriginal && ref.E.flow == r.Flow {
		for {
			w := ref.E.word.Load()
			if !isLive(w) {
				break
			}
			if ref.E.word.CompareAndSwap(w, liveWord(st, 0, dl)) {
				t.updated.Add(1)
				return nil
			}
		}
	}
	_, err := t.insert(&r.Flow, st, dl, now, true)
	return err
}

// Expire ends e's flow now: its deadline moves to the past, so workers
// treat its packets as a miss and the next Sweep removes it (and reports
// it). It returns false when the entry was no longer live. HA sync uses it
// for a flow the peer removed. Any goroutine, between Begin and End of its
// Reader; it never blocks.
func (t *Table[K]) Expire(e *Entry[K]) bool {
	for {
		w := e.word.Load()
		if !isLive(w) {
			return false
		}
		if e.word.CompareAndSwap(w, liveWord(State(w), wordFin(w), 0)) {
			return true
		}
	}
}
