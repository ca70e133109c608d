package sched

import "testing"

// TestNoAllocs is the allocation contract of the per-flow functions.
func TestNoAllocs(t *testing.T) {
	pool := equalPool(10)
	m := mustMaglev(t, testKey, 0, pool)
	w := NewWRR(weightedPool(1, 2, 3, 4))
	active := NewActive(10)
	l := NewLeastConn(pool, active)
	schedulers := []Scheduler{m.Scheduler(), w.Scheduler(), l.Scheduler()}
	src, dst := [4]byte{198, 51, 100, 7}, [4]byte{192, 0, 2, 1}
	src6, dst6 := [16]byte{0x20, 0x01, 15: 7}, [16]byte{0x20, 0x01, 15: 1}
	var sink uint64
	var cursor uint32
	tests := []struct {
		name string
		f    func()
	}{
		{"FlowHash4", func() { sink += FlowHash4(&testKey, src, dst, 40000, 443, 6) }},
		{"FlowHash6", func() { sink += FlowHash6(&testKey, src6, dst6, 40000, 443, 6) }},
		{"Maglev.Pick", func() { id, _ := m.Pick(sink); sink += uint64(id) + 0x9e3779b97f4a7c15 }},
		{"WRR.Pick", func() { id, _ := w.Pick(&cursor); sink += uint64(id) }},
		{"LeastConn.Pick", func() { id, _ := l.Pick(&cursor); sink += uint64(id) }},
		{"Active.Inc+Dec", func() { active.Inc(3); active.Dec(3) }},
		{"Scheduler.Pick", func() {
			for _, s := range schedulers {
				id, _ := s.Pick(sink, &cursor)
				sink += uint64(id)
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if n := testing.AllocsPerRun(1000, tt.f); n != 0 {
				t.Errorf("%s allocates %v times per call", tt.name, n)
			}
		})
	}
}
