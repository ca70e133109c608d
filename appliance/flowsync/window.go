package flowsync

// windowSize is the width of the anti-replay window, in sequence numbers
// (RFC 4303 section 3.4.3 asks for at least 32 and recommends 64). A
// missing message can be asked for again only while it is in the window,
// and a bulk transfer runs at some 25,000 messages a second, so the
// window spans about 80 ms of one: room for a receiver that falls behind
// its socket buffer, a Nack and the message sent again.
const windowSize = 2048

// window is the anti-replay window of one peer epoch, in the manner of
// IPsec ESP (RFC 4303 section 3.4.3), kept as a ring of bits indexed by
// sequence number modulo windowSize (RFC 6479) so that advancing never
// shifts. It also remembers the highest sequence number known lost, which
// the bulk resync uses to tell a complete transfer from one with holes.
//
// The zero window has seen nothing. Not safe for concurrent use.
type window struct {
	top  uint64 // highest sequence number accepted; 0: none yet
	base uint64 // first sequence number accepted: those below were sent before we listened
	bits [windowSize / 64]uint64
	// lost is the highest sequence number in [base, top] that left the
	// window without arriving; 0 if none.
	lost uint64
	// nacked counts the Nacks that named each missing sequence number in
	// the window, and nackedAt is when the last did (same ring as bits); a
	// slot is zeroed when it is reused.
	nacked   [windowSize]uint8
	nackedAt [windowSize]int64
}

func (w *window) has(s uint64) bool { return w.bits[s%windowSize/64]>>(s%64)&1 != 0 }
func (w *window) set(s uint64)      { w.bits[s%windowSize/64] |= 1 << (s % 64) }
func (w *window) clear(s uint64)    { w.bits[s%windowSize/64] &^= 1 << (s % 64) }

// check reports whether sequence number s is acceptable: not zero, not
// seen, and not too old for the window.
func (w *window) check(s uint64) bool {
	switch {
	case s == 0:
		return false
	case w.top == 0 || s > w.top:
		return true
	case w.top-s >= windowSize:
		return false
	}
	return !w.has(s)
}

// accept records s, which check accepted. skipped is how many sequence
// numbers s jumped over (a gap); late is true when s filled an earlier
// gap.
func (w *window) accept(s uint64) (skipped uint64, late bool) {
	if w.top == 0 {
		w.top, w.base = s, s
		w.set(s)
		return 0, false
	}
	if s <= w.top {
		w.set(s)
		return 0, true
	}
	skipped = s - w.top - 1
	// Sequence numbers up to s-windowSize leave the window now; the
	// highest of them that never arrived becomes lost. Those above top
	// were skipped, so the highest leaving is lost when it is above top.
	if s >= windowSize {
		hi := s - windowSize
		if hi > w.top {
			w.lost = hi
		} else {
			lo := w.base
			if w.top >= windowSize && w.top-windowSize+1 > lo {
				lo = w.top - windowSize + 1
			}
			for q := hi; q >= lo && q > w.lost; q-- {
				if !w.has(q) {
					w.lost = q
					break
				}
			}
		}
	}
	// Free the slots of top+1..s (at most the whole ring).
	n := min(s-w.top, windowSize)
	for q := s - n + 1; q <= s; q++ {
		w.clear(q)
		w.nacked[q%windowSize], w.nackedAt[q%windowSize] = 0, 0
	}
	w.set(s)
	w.top = s
	return skipped, false
}

// complete reports whether every sequence number in [first, last] has
// arrived; last must have been accepted. It answers false when first
// precedes what this window has seen, or when a number since first was
// lost (even one after last: the window cannot tell, so it errs on the
// side of another resync).
func (w *window) complete(first, last uint64) bool {
	if first == 0 || first > last || first < w.base || w.lost >= first || last > w.top {
		return false
	}
	lo := first
	if w.top >= windowSize && w.top-windowSize+1 > lo {
		lo = w.top - windowSize + 1
	}
	for q := lo; q <= last; q++ {
		if !w.has(q) {
			return false
		}
	}
	return true
}

// missing appends to rs (up to its capacity) the runs of sequence numbers
// in the window, from base on and below top, that have not arrived and
// are due a Nack at now: never named, or named fewer than maxNacks times
// and last at least retry before now. It counts them as named at now,
// and reports whether any hole may still be due later. Oldest first; it
// allocates nothing when rs has room.
func (w *window) missing(rs []nackRange, now, retry int64, maxNacks uint8) (_ []nackRange, later bool) {
	if w.top == 0 {
		return rs, false
	}
	lo := w.base
	if w.top >= windowSize && w.top-windowSize+1 > lo {
		lo = w.top - windowSize + 1
	}
	for q := lo; q < w.top; q++ {
		i := q % windowSize
		if w.has(q) || w.nacked[i] >= maxNacks {
			continue
		}
		if len(rs) == cap(rs) || w.nacked[i] > 0 && now-w.nackedAt[i] < retry {
			later = true
			continue
		}
		w.nacked[i]++
		w.nackedAt[i] = now
		later = later || w.nacked[i] < maxNacks
		if n := len(rs); n > 0 && rs[n-1].first+uint64(rs[n-1].n) == q {
			rs[n-1].n++
		} else {
			rs = append(rs, nackRange{first: q, n: 1})
		}
	}
	return rs, later
}
