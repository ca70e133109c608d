package sched

import (
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

// cycleOf runs Pick len times from a fresh cursor.
func cycleOf(w *WRR, n int) []uint32 {
	var c uint32
	out := make([]uint32, n)
	for i := range out {
		out[i], _ = w.Pick(&c)
	}
	return out
}

func TestWRRProportions(t *testing.T) {
	tests := []struct {
		name    string
		ws      []uint32
		wantLen int
		want    []int // turns per cycle, by ID
	}{
		{"1,2,3,4", []uint32{1, 2, 3, 4}, 10, []int{1, 2, 3, 4}},
		{"equal", []uint32{5, 5, 5}, 3, []int{1, 1, 1}},
		{"common factor", []uint32{100, 200, 300}, 6, []int{1, 2, 3}},
		{"drained", []uint32{3, 0, 1}, 4, []int{3, 0, 1}},
		{"single", []uint32{7}, 1, []int{1}},
		{"coprime", []uint32{7, 11, 13}, 31, []int{7, 11, 13}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWRR(weightedPool(tt.ws...))
			if w.Len() != tt.wantLen {
				t.Fatalf("Len() = %d, want %d", w.Len(), tt.wantLen)
			}
			// Three full cycles through Pick: exactly 3× the weights.
			got := make([]int, len(tt.ws))
			for _, id := range cycleOf(w, 3*w.Len()) {
				got[id]++
			}
			for i := range got {
				if got[i] != 3*tt.want[i] {
					t.Errorf("backend %d: %d turns in 3 cycles, want %d", i, got[i], 3*tt.want[i])
				}
			}
		})
	}
}

func TestWRRInterleave(t *testing.T) {
	t.Run("golden", func(t *testing.T) {
		tests := []struct {
			ws   []uint32
			want []uint32
		}{
			{[]uint32{5, 1}, []uint32{0, 0, 0, 1, 0, 0}},
			{[]uint32{1, 5}, []uint32{1, 1, 0, 1, 1, 1}},
			{[]uint32{2, 1, 1}, []uint32{0, 1, 2, 0}},
			{[]uint32{3, 2}, []uint32{0, 1, 0, 1, 0}},
			{[]uint32{4, 3, 2, 1}, []uint32{0, 1, 2, 0, 1, 3, 0, 2, 1, 0}},
		}
		for _, tt := range tests {
			if got := NewWRR(weightedPool(tt.ws...)).Cycle(); !slices.Equal(got, tt.want) {
				t.Errorf("weights %v: cycle %v, want %v", tt.ws, got, tt.want)
			}
		}
	})
	// For random weights: every gap between two turns of a backend
	// (cyclically) is Σw/wᵢ within 2n, and a backend with several turns
	// never takes them all in a row while others have weight.
	t.Run("spread", func(t *testing.T) {
		r := rand.New(rand.NewPCG(8, 9))
		for range 200 {
			n := 2 + r.IntN(12)
			ws := make([]uint32, n)
			for i := range ws {
				ws[i] = 1 + r.Uint32N(50)
			}
			w := NewWRR(weightedPool(ws...))
			seq := w.Cycle()
			S := float64(len(seq))
			for id := range ws {
				var at []int
				for i, x := range seq {
					if x == uint32(id) {
						at = append(at, i)
					}
				}
				turns := float64(len(at))
				for j := range at {
					gap := at[(j+1)%len(at)] - at[j]
					if gap <= 0 {
						gap += len(seq)
					}
					if math.Abs(float64(gap)-S/turns) > 2*float64(n) {
						t.Fatalf("weights %v: backend %d gap %d, want %.1f ± %d; cycle %v", ws, id, gap, S/turns, 2*n, seq)
					}
				}
				if len(at) > 1 && at[len(at)-1]-at[0] == len(at)-1 {
					t.Fatalf("weights %v: backend %d takes all %d turns in a row: %v", ws, id, len(at), seq)
				}
			}
		}
	})
}

func TestWRRCursors(t *testing.T) {
	w := NewWRR(weightedPool(4, 3, 2, 1))
	want := cycleOf(w, 25)
	// Two cursors, picks interleaved: each sees the sequence alone.
	var a, b uint32
	var gotA, gotB []uint32
	for range 25 {
		id, _ := w.Pick(&a)
		gotA = append(gotA, id)
		id, _ = w.Pick(&b)
		gotB = append(gotB, id)
		id, _ = w.Pick(&b)
		gotB = append(gotB, id)
	}
	if !slices.Equal(gotA, want) || !slices.Equal(gotB[:25], want) {
		t.Errorf("interleaved cursors: %v and %v, want %v", gotA, gotB[:25], want)
	}
	// A cursor past the end (from a longer schedule) restarts at 0.
	c := uint32(1000)
	if id, ok := w.Pick(&c); !ok || id != want[0] || c != 1 {
		t.Errorf("Pick(cursor 1000) = %d, %v, cursor %d; want %d, true, cursor 1", id, ok, c, want[0])
	}
	c = math.MaxUint32
	if id, _ := w.Pick(&c); id != want[0] || c != 1 {
		t.Errorf("Pick(cursor max) = %d, cursor %d", id, c)
	}
}

func TestWRREmpty(t *testing.T) {
	for name, w := range map[string]*WRR{
		"nil pool":    NewWRR(nil),
		"all drained": NewWRR(weightedPool(0, 0)),
		"zero WRR":    {},
	} {
		t.Run(name, func(t *testing.T) {
			var c uint32
			if id, ok := w.Pick(&c); ok || c != 0 {
				t.Errorf("Pick = %d, %v, cursor %d; want ok=false, cursor untouched", id, ok, c)
			}
			if w.Len() != 0 {
				t.Errorf("Len() = %d", w.Len())
			}
		})
	}
}

// TestWRRScaling checks the precision documented on WRR when weights sum
// past WRRMaxCycle.
func TestWRRScaling(t *testing.T) {
	r := rand.New(rand.NewPCG(10, 11))
	tests := []struct {
		name string
		ws   []uint32
	}{
		{"max weights", []uint32{math.MaxUint32, math.MaxUint32 - 1, 1}},
		{"one huge", []uint32{1 << 30, 1, 1, 1, 1}},
		{"random large", func() []uint32 {
			ws := make([]uint32, 100)
			for i := range ws {
				ws[i] = 1 + r.Uint32N(1<<20)
			}
			return ws
		}()},
		{"just over", []uint32{WRRMaxCycle, 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := NewWRR(weightedPool(tt.ws...))
			if w.Len() > WRRMaxCycle {
				t.Fatalf("Len() = %d > WRRMaxCycle", w.Len())
			}
			n := float64(len(tt.ws))
			bound := (n + 1) / (WRRMaxCycle - 2*n)
			var sum float64
			for _, x := range tt.ws {
				sum += float64(x)
			}
			got := make([]int, len(tt.ws))
			for _, id := range w.Cycle() {
				got[id]++
			}
			for i, x := range tt.ws {
				if got[i] == 0 {
					t.Errorf("backend %d (weight %d) starved", i, x)
				}
				share := float64(got[i]) / float64(w.Len())
				if d := math.Abs(share - float64(x)/sum); d > bound {
					t.Errorf("backend %d (weight %d): share %.6f, want %.6f ± %.6f", i, x, share, float64(x)/sum, bound)
				}
			}
		})
	}
	t.Run("many backends", func(t *testing.T) {
		ws := make([]uint32, WRRMaxCycle/2+1)
		for i := range ws {
			ws[i] = uint32(1 + i%3)
		}
		if got := NewWRR(weightedPool(ws...)).Len(); got != len(ws) {
			t.Errorf("Len() = %d, want one turn each (%d)", got, len(ws))
		}
	})
}
