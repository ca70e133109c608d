package health

import "testing"

// step is one probe result and what the machine must show after it.
type step struct {
	ok   bool
	want State
}

func TestMachine(t *testing.T) {
	const U, D, N = StateUp, StateDown, StateUnknown
	tests := []struct {
		name       string
		rise, fall int
		steps      []step
	}{
		{"unknown rises after rise successes", 2, 3, []step{{true, N}, {true, U}, {true, U}}},
		{"unknown falls after fall failures", 2, 3, []step{{false, N}, {false, N}, {false, D}}},
		{"mixed start stays unknown", 2, 3, []step{{true, N}, {false, N}, {true, N}, {false, N}, {true, N}, {true, U}}},
		{"up falls after fall failures", 2, 3, []step{{true, N}, {true, U}, {false, U}, {false, U}, {false, D}, {false, D}}},
		{"down rises after rise successes", 2, 3, []step{{false, N}, {false, N}, {false, D}, {true, D}, {true, U}}},
		{"flapping up stays up", 2, 3, []step{{true, N}, {true, U}, {false, U}, {true, U}, {false, U}, {false, U}, {true, U}, {false, U}}},
		{"flapping down stays down", 2, 3, []step{{false, N}, {false, N}, {false, D}, {true, D}, {false, D}, {true, D}, {false, D}}},
		{"rise 1 fall 1", 1, 1, []step{{true, U}, {false, D}, {true, U}, {false, D}}},
		{"zero thresholds act as 1", 0, 0, []step{{false, D}, {true, U}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := NewMachine(tt.rise, tt.fall)
			if m.State() != StateUnknown {
				t.Fatalf("new machine in %v", m.State())
			}
			for i, s := range tt.steps {
				before := m.State()
				from, to := m.Observe(s.ok)
				if from != before || to != s.want || m.State() != s.want {
					t.Fatalf("step %d (ok=%v): Observe = %v -> %v, State %v; want %v -> %v",
						i, s.ok, from, to, m.State(), before, s.want)
				}
				ok, fail := m.Consecutive()
				if (s.ok && (ok == 0 || fail != 0)) || (!s.ok && (fail == 0 || ok != 0)) {
					t.Fatalf("step %d: Consecutive = %d, %d", i, ok, fail)
				}
			}
		})
	}
}

func TestEligible(t *testing.T) {
	for s, want := range map[State]bool{StateUnknown: true, StateUp: true, StateDown: false} {
		if s.Eligible() != want {
			t.Errorf("%v.Eligible() = %v", s, !want)
		}
	}
}

func TestMachineNoAllocs(t *testing.T) {
	m := NewMachine(2, 3)
	i := 0
	if n := testing.AllocsPerRun(1000, func() { i++; m.Observe(i%4 != 0) }); n != 0 {
		t.Errorf("Observe: %v allocs, want 0", n)
	}
}

func BenchmarkMachineObserve(b *testing.B) {
	b.ReportAllocs()
	m := NewMachine(2, 3)
	for i := 0; b.Loop(); i++ {
		m.Observe(i%5 != 0)
	}
}
