package sched

import (
	"math"
	"sync/atomic"
)

// LeastConn picks the backend that minimises active/weight, IPVS's weighted
// least-connection (wlc) rule, reading the live counts from an Active. Ties
// rotate: the scan starts at the caller's cursor and the cursor moves past
// the backend picked, so successive ties go round the tied backends in pool
// order. The pool is fixed at construction; a LeastConn is safe for
// concurrent Pick by any number of goroutines with distinct cursors (the
// shared state is the Active, read atomically). The zero LeastConn is empty:
// Pick returns ok=false.
//
// Pick costs one atomic load and two multiplications per backend with weight
// (see BenchmarkLeastConnPick), so it suits pools of tens to a few hundred
// backends.
type LeastConn struct {
	members []lcMember
}

type lcMember struct {
	n      *atomic.Int64 // the backend's counter in the Active
	weight uint64
	id     uint32
}

// NewLeastConn builds the picker for pool over active. Backends of weight 0
// get no new flows. active must be non-nil and cover every ID in pool with
// weight (New checks both and returns an error); NewLeastConn panics
// otherwise.
func NewLeastConn(pool []Backend, active *Active) *LeastConn {
	if active == nil {
		panic("sched: NewLeastConn with nil Active")
	}
	l := &LeastConn{}
	for _, b := range pool {
		if b.Weight == 0 {
			continue
		}
		if uint64(b.ID) >= uint64(active.Cap()) {
			panic("sched: NewLeastConn: backend id beyond Active capacity")
		}
		l.members = append(l.members, lcMember{n: &active.c[b.ID].n, weight: uint64(b.Weight), id: b.ID})
	}
	return l
}

// load reads a counter clamped to [0, 2³²−1], so that load·weight (weight
// below 2³²) fits in 64 bits.
func load(n *atomic.Int64) uint64 {
	v := n.Load()
	if v < 0 {
		return 0
	}
	return uint64(min(v, math.MaxUint32))
}

// Pick returns the backend with the least active/weight, or ok=false when no
// backend has weight. It does not allocate or lock; it writes only *cursor.
func (l *LeastConn) Pick(cursor *uint32) (id uint32, ok bool) {
	ms := l.members
	if len(ms) == 0 {
		return 0, false
	}
	start := int(*cursor)
	if start >= len(ms) {
		start = 0
	}
	best := start
	bestLoad, bestW := load(ms[start].n), ms[start].weight
	// a/w < b/v  <=>  a·v < b·w; strict, so the first of a tie from start wins.
	for i := start + 1; i < len(ms); i++ {
		if a := load(ms[i].n); a*bestW < bestLoad*ms[i].weight {
			best, bestLoad, bestW = i, a, ms[i].weight
		}
	}
	for i := 0; i < start; i++ {
		if a := load(ms[i].n); a*bestW < bestLoad*ms[i].weight {
			best, bestLoad, bestW = i, a, ms[i].weight
		}
	}
	*cursor = uint32(best + 1)
	return ms[best].id, true
}
