package conntrack

import "time"

// Track accounts one packet of e's flow travelling in dir, with TCP flags
// tcpFlags (ignored unless the flow is TCP), seen at now: it advances the
// state machine (TCP for Proto 6, UDP for the others, a plain refresh for
// StatePersist) and moves the deadline to now plus the new state's timeout.
// It returns the new state and true, or false when the entry is dead or
// past its deadline: the caller treats the packet as a miss (a new Insert
// of the same key replaces the expired flow).
//
// The state word is written (with CAS) only when the state changes or the
// deadline moves to a later second, so a flow's packets within one second
// share its cache line read-only across workers. Track never allocates,
// locks or blocks; the caller must be between Begin and End of its Reader.
func (t *Table[K]) Track(e *Entry[K], dir Dir, tcpFlags uint8, now Time) (State, bool) {
	for {
		w := e.word.Load()
		st := State(w)
		if st == StateNone {
			return StateNone, false
		}
		if expiredAt(w, now) {
			return st, false
		}
		fb := wordFin(w)
		nst, nfb := st, fb
		var d int64
		switch {
		case st == StatePersist:
			d = int64(e.flow.PersistTimeout) * int64(time.Second)
		case keyProto(&e.flow.Orig) == 6:
			nst, nfb = tcpNext(st, fb, dir, tcpFlags, e.flow.OneWay)
			d = t.tmo[nst&15]
		default:
			nst = udpNext(st, dir, e.flow.OneWay)
			d = t.tmo[nst&15]
		}
		dl := deadlineAfter(now, d)
		if nst == st && nfb == fb && dl <= wordDeadline(w) {
			return st, true
		}
		if e.word.CompareAndSwap(w, liveWord(nst, nfb, dl)) {
			return nst, true
		}
	}
}
