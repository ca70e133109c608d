package conntrack

import "testing"

// TestNoAllocs is the allocation contract of the hot path.
func TestNoAllocs(t *testing.T) {
	const n = 4096
	tb := newTable[Key4](t, Config{MaxFlows: n})
	r := tb.NewReader()
	r.Begin()
	for i := range uint32(n / 2) {
		f := natFlow4(i, 6)
		tb.Insert(&f, StateEstablished, 0)
	}
	r.End()
	keys := make([]Key4, MaxBatch)
	for i := range keys {
		keys[i] = key4(uint32(i*3), 6)
	}
	out := make([]Ref[Key4], MaxBatch)
	k := key4(7, 6)
	e := tb.Lookup(&k).E
	next := uint32(n)
	var now Time
	cb := func(*Flow[Key4]) {}

	tests := []struct {
		name string
		fn   func()
	}{
		{"Begin/End", func() { r.Begin(); r.End() }},
		{"Lookup", func() { r.Begin(); tb.Lookup(&k); r.End() }},
		{"LookupBatch", func() { r.Begin(); tb.LookupBatch(keys, out); r.End() }},
		{"LookupBatch/prefetch", func() { r.Begin(); tb.lookupBatch(keys, out, true); r.End() }},
		{"Track", func() { r.Begin(); now += sec; tb.Track(e, DirOriginal, FlagACK, now); r.End() }},
		{"Insert", func() {
			r.Begin()
			f := natFlow4(next, 6)
			next++
			tb.Insert(&f, StateSynSent, now)
			r.End()
		}},
		{"Insert/exists", func() { r.Begin(); f := natFlow4(1, 6); tb.Insert(&f, StateSynSent, now); r.End() }},
		{"Sweep", func() { now += 10 * sec; tb.Sweep(now, 64, cb) }},
		{"Hash", func() { tb.Hash(&k) }},
		{"Stats", func() { tb.Stats() }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if a := testing.AllocsPerRun(200, tc.fn); a != 0 {
				t.Fatalf("%v allocs per call", a)
			}
		})
	}
	t.Run("Key6", func(t *testing.T) {
		t6 := newTable[Key6](t, Config{MaxFlows: 256})
		r6 := t6.NewReader()
		keys6 := make([]Key6, MaxBatch)
		out6 := make([]Ref[Key6], MaxBatch)
		i := uint32(0)
		a := testing.AllocsPerRun(100, func() {
			r6.Begin()
			f := Flow[Key6]{Orig: key6(i, 17), Reply: reply6(i, 17), HasReply: true}
			i++
			if e, err := t6.Insert(&f, StateUDPUnreplied, 0); err == nil {
				t6.Track(e, DirReply, 0, sec)
			}
			t6.lookupBatch(keys6, out6, true)
			r6.End()
		})
		if a != 0 {
			t.Fatalf("%v allocs per call", a)
		}
	})
}
