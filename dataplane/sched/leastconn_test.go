package sched

import (
	"slices"
	"sync"
	"testing"
)

// withLoads returns an Active of capacity 16 holding the given counts.
func withLoads(loads ...int64) *Active {
	a := NewActive(16)
	for id, n := range loads {
		a.c[id].n.Store(n)
	}
	return a
}

func TestLeastConnPicksLeastLoaded(t *testing.T) {
	tests := []struct {
		name  string
		ws    []uint32
		loads []int64
		want  uint32
	}{
		{"fewest", []uint32{1, 1, 1}, []int64{5, 2, 9}, 1},
		{"last", []uint32{1, 1, 1}, []int64{5, 2, 1}, 2},
		{"weight counts", []uint32{1, 4, 1}, []int64{2, 6, 3}, 1},       // 2/1, 6/4, 3/1
		{"weight counts 2", []uint32{10, 1}, []int64{95, 10}, 0},        // 9.5 vs 10
		{"drained never", []uint32{1, 0, 1}, []int64{5, 0, 4}, 2},       // 1 is idle but drained
		{"negative is zero", []uint32{1, 1, 1}, []int64{1, -3, 0}, 1},   // -3 reads as 0: tie with 2, 1 first
		{"big weights", []uint32{4e9, 1}, []int64{4_000_000, 1}, 0},     // 0.001 vs 1
		{"big loads", []uint32{1, 2}, []int64{3_000_000, 6_000_001}, 0}, // 3e6 vs 3e6+0.5
		{"huge loads", []uint32{1, 1}, []int64{1 << 40, 1 << 33}, 0},    // both clamp to 2³²−1: tie
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLeastConn(weightedPool(tt.ws...), withLoads(tt.loads...))
			var c uint32
			if id, ok := l.Pick(&c); !ok || id != tt.want {
				t.Errorf("Pick = %d, %v; want %d", id, ok, tt.want)
			}
		})
	}
}

func TestLeastConnRotatesTies(t *testing.T) {
	tests := []struct {
		name  string
		ws    []uint32
		loads []int64
		want  []uint32
	}{
		{"all idle", []uint32{1, 1, 1}, nil, []uint32{0, 1, 2, 0, 1, 2}},
		{"two tied", []uint32{1, 1, 1}, []int64{0, 1, 0}, []uint32{0, 2, 0, 2, 0, 2}},
		{"weighted tie", []uint32{2, 1, 1}, []int64{2, 1, 3}, []uint32{0, 1, 0, 1}}, // 1 = 1 < 3
		{"single", []uint32{3}, []int64{7}, []uint32{0, 0, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLeastConn(weightedPool(tt.ws...), withLoads(tt.loads...))
			var c uint32
			var got []uint32
			for range tt.want {
				id, _ := l.Pick(&c)
				got = append(got, id)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("picks %v, want %v", got, tt.want)
			}
		})
	}
	t.Run("cursors independent", func(t *testing.T) {
		l := NewLeastConn(equalPool(4), NewActive(4))
		var a, b uint32
		var got []uint32
		for range 4 {
			x, _ := l.Pick(&a)
			y, _ := l.Pick(&b)
			got = append(got, x, y)
		}
		if want := []uint32{0, 0, 1, 1, 2, 2, 3, 3}; !slices.Equal(got, want) {
			t.Errorf("picks %v, want %v", got, want)
		}
	})
}

// TestLeastConnConverges: picking and counting from idle, connections end
// up in proportion to the weights, every backend within one of its share.
func TestLeastConnConverges(t *testing.T) {
	ws := []uint32{1, 2, 3, 4}
	a := NewActive(len(ws))
	l := NewLeastConn(weightedPool(ws...), a)
	var c uint32
	for range 1000 {
		id, _ := l.Pick(&c)
		a.Inc(id)
	}
	for id, w := range ws {
		if got, want := a.Load(uint32(id)), int64(100*w); got < want-1 || got > want+1 {
			t.Errorf("backend %d (weight %d): %d flows, want %d ± 1", id, w, got, want)
		}
	}
}

func TestLeastConnEmpty(t *testing.T) {
	for name, l := range map[string]*LeastConn{
		"nil pool":     NewLeastConn(nil, NewActive(0)),
		"all drained":  NewLeastConn(weightedPool(0, 0), NewActive(2)),
		"zero LeastCo": {},
	} {
		var c uint32
		if id, ok := l.Pick(&c); ok || c != 0 {
			t.Errorf("%s: Pick = %d, %v, cursor %d; want ok=false", name, id, ok, c)
		}
	}
}

func TestNewLeastConnPanics(t *testing.T) {
	tests := []struct {
		name   string
		pool   []Backend
		active *Active
	}{
		{"nil active", equalPool(2), nil},
		{"id beyond capacity", equalPool(3), NewActive(2)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Error("no panic")
				}
			}()
			NewLeastConn(tt.pool, tt.active)
		})
	}
	// A drained backend beyond capacity is fine: it is never read.
	NewLeastConn(weightedPool(1, 1, 0), NewActive(2))
}

func TestActiveConcurrent(t *testing.T) {
	a := NewActive(4)
	if a.Cap() != 4 {
		t.Fatalf("Cap() = %d", a.Cap())
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := range 10000 {
				id := uint32((g + i) % 4)
				a.Inc(id)
				if i%2 == 0 {
					a.Dec(id)
				}
			}
		})
	}
	// A LeastConn reading while they write (for -race).
	l := NewLeastConn(equalPool(4), a)
	var c uint32
	for range 1000 {
		if _, ok := l.Pick(&c); !ok {
			t.Fatal("Pick failed")
		}
	}
	wg.Wait()
	var total int64
	for id := range uint32(4) {
		total += a.Load(id)
	}
	if total != 4*5000 {
		t.Errorf("total = %d, want %d", total, 4*5000)
	}
}
