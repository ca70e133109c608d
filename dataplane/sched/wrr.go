package sched

// WRRMaxCycle caps the length of a WRR schedule (256 KiB of IDs).
const WRRMaxCycle = 1 << 16

// WRR is an immutable weighted round-robin schedule: a precomputed cycle of
// backend IDs in which each backend appears in proportion to its weight, its
// turns spread evenly over the cycle rather than bunched. Each worker keeps
// its own cursor per service, so Pick writes only the caller's cursor; a WRR
// is safe for concurrent Pick by any number of goroutines with distinct
// cursors. The zero WRR is empty: Pick returns ok=false.
//
// The cycle is built by Sainte-Laguë (Webster) apportionment, the interleave
// also known as stride scheduling: backend i's k-th turn (k = 0 .. wᵢ−1) is
// due at virtual time (k + ½)/wᵢ, and the cycle lists turns by due time,
// ties in pool order. Over one cycle a backend gets exactly wᵢ turns, and the
// gap between two of its turns is Σw/wᵢ to within 2n for n backends, so with weights {5, 1} the cycle is A A A B A A, not A A A A A B.
//
// Precision: weights are first divided by their greatest common divisor.
// If they still sum to more than WRRMaxCycle, backend i gets
// w'ᵢ = max(1, ⌊wᵢ·B/Σw⌋) turns, B = WRRMaxCycle − n for n backends with
// weight, so the cycle is at most WRRMaxCycle long and no live backend is
// starved; each backend's share of turns then differs from wᵢ/Σw by less than
// (n+1)/(B−n) (for 10 backends, under 0.02 percentage points). With n ≥
// WRRMaxCycle/2 every backend gets one turn (plain round robin).
type WRR struct {
	seq []uint32
}

// NewWRR builds the schedule for pool. Backends of weight 0 get no turns;
// pool order breaks ties. NewWRR does not check the pool for duplicates (New
// does); a backend listed twice gets both entries' turns.
func NewWRR(pool []Backend) *WRR {
	var ids []uint32
	var ws []uint64
	for _, b := range pool {
		if b.Weight > 0 {
			ids = append(ids, b.ID)
			ws = append(ws, uint64(b.Weight))
		}
	}
	n := len(ids)
	if n == 0 {
		return &WRR{}
	}
	sum := reduce(ws)
	if sum > WRRMaxCycle {
		if n >= WRRMaxCycle/2 {
			for i := range ws {
				ws[i] = 1
			}
		} else {
			budget := uint64(WRRMaxCycle - n)
			for i := range ws {
				ws[i] = max(1, ws[i]*budget/sum)
			}
		}
		sum = reduce(ws)
	}

	// Merge the n arithmetic sequences of due times with a heap of backend
	// indices.
	next := make([]uint64, n) // next turn k of backend i
	h := make([]int32, n)
	for i := range h {
		h[i] = int32(i)
	}
	for i := n/2 - 1; i >= 0; i-- {
		dueSiftDown(h, i, next, ws)
	}
	seq := make([]uint32, 0, sum)
	for range sum {
		i := h[0]
		seq = append(seq, ids[i])
		next[i]++
		if next[i] == ws[i] {
			// Done for this cycle: drop from the heap.
			h[0] = h[len(h)-1]
			h = h[:len(h)-1]
		}
		dueSiftDown(h, 0, next, ws)
	}
	return &WRR{seq: seq}
}

// dueBefore reports whether backend a's next turn is due before b's: due
// time (2k+1)/(2w), compared by cross-multiplying (every factor is below 2¹⁷
// after scaling, so no overflow), ties to the lower index.
func dueBefore(a, b int32, next, ws []uint64) bool {
	l := (2*next[a] + 1) * ws[b]
	r := (2*next[b] + 1) * ws[a]
	if l != r {
		return l < r
	}
	return a < b
}

// dueSiftDown restores the heap h (ordered by dueBefore) below index i.
func dueSiftDown(h []int32, i int, next, ws []uint64) {
	for {
		c := 2*i + 1
		if c >= len(h) {
			return
		}
		if c+1 < len(h) && dueBefore(h[c+1], h[c], next, ws) {
			c++
		}
		if !dueBefore(h[c], h[i], next, ws) {
			return
		}
		h[i], h[c] = h[c], h[i]
		i = c
	}
}

// reduce divides ws by their greatest common divisor and returns their sum.
func reduce(ws []uint64) uint64 {
	var g uint64
	for _, w := range ws {
		g = gcd(g, w)
	}
	var sum uint64
	for i := range ws {
		ws[i] /= g
		sum += ws[i]
	}
	return sum
}

func gcd(a, b uint64) uint64 {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

// Pick returns the backend at *cursor and advances it, wrapping at the end
// of the cycle; ok=false when no backend has weight. A cursor beyond the
// cycle (a fresh schedule shorter than the last one) restarts at 0. Pick
// does not allocate, lock or write anything but *cursor.
func (w *WRR) Pick(cursor *uint32) (id uint32, ok bool) {
	s := w.seq
	i := *cursor
	if uint64(i) >= uint64(len(s)) {
		if len(s) == 0 {
			return 0, false
		}
		i = 0
	}
	*cursor = i + 1
	return s[i], true
}

// Len returns the length of the cycle (Σw after reduction), 0 when empty.
func (w *WRR) Len() int { return len(w.seq) }

// Cycle returns a copy of the schedule, for tests and diagnostics.
func (w *WRR) Cycle() []uint32 { return append([]uint32(nil), w.seq...) }
