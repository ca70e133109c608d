package conntrack

import (
	"maps"
	"testing"
	"time"
)

func recordsAt[K Key](tb *Table[K], now Time) map[K]Record[K] {
	m := make(map[K]Record[K])
	tb.RangeAt(now, func(r Record[K]) bool {
		if _, dup := m[r.Flow.Orig]; dup {
			panic("flow seen twice")
		}
		m[r.Flow.Orig] = r
		return true
	})
	return m
}

func TestRangeImportRoundTrip(t *testing.T) {
	const n = 700 // over four shards of 500 entries
	src := newTable[Key4](t, Config{MaxFlows: 2000})
	if len(src.shards) < 2 {
		t.Fatalf("want a multi-shard table, got %d shards", len(src.shards))
	}
	r := src.NewReader()
	r.Begin()
	want := make(map[Key4]Record[Key4])
	for i := range uint32(n) {
		var f Flow[Key4]
		st := StateEstablished
		switch i % 4 {
		case 0:
			f = natFlow4(i, 6)
		case 1:
			f = dsrFlow4(i, 17)
			st = StateUDP
		case 2:
			f = Flow[Key4]{Orig: key4(i, ProtoPersist), PersistTimeout: 600, Backend: 9}
			st = StatePersist
		case 3:
			f = natFlow4(i, 6)
			st = StateSynSent
		}
		f.Service = i
		f.Owner = uint16(i % 3)
		f.Local = uint16(i % 5)
		e, err := src.Insert(&f, st, 100*sec)
		if err != nil {
			t.Fatal(err)
		}
		if i%4 == 3 && i%8 == 7 {
			st, _ = src.Track(e, DirReply, FlagSYN|FlagACK, 110*sec)
		}
		rem := time.Duration(deadlineOf(e))*time.Second - 150*time.Second
		want[f.Orig] = Record[Key4]{Flow: f, State: st, Remaining: rem}
	}
	// One flow already past its deadline at 150 s but not swept: not listed.
	late := natFlow4(5000, 6)
	src.Insert(&late, StateClose, 100*sec)
	r.End()

	got := recordsAt(src, 150*sec)
	if !maps.Equal(got, want) {
		t.Fatalf("Range: %d records, want %d", len(got), len(want))
	}

	// Early stop.
	calls := 0
	src.RangeAt(150*sec, func(Record[Key4]) bool { calls++; return calls < 3 })
	if calls != 3 {
		t.Fatalf("Range kept going after false: %d calls", calls)
	}

	// Import on a peer whose clock reads 1000 s.
	dst := newTable[Key4](t, Config{MaxFlows: 2000, Seed: 777})
	for _, rec := range got {
		if err := dst.Import(rec, 1000*sec); err != nil {
			t.Fatal(err)
		}
	}
	if back := recordsAt(dst, 1000*sec); !maps.Equal(back, want) {
		t.Fatal("records differ after Import")
	}
	rd := dst.NewReader()
	rd.Begin()
	for _, rec := range want {
		if ref := dst.Lookup(&rec.Flow.Orig); ref.E == nil || ref.Dir != DirOriginal || *ref.E.Flow() != rec.Flow {
			t.Fatalf("orig of %v not found", rec.Flow.Orig)
		}
		if rec.Flow.HasReply {
			if ref := dst.Lookup(&rec.Flow.Reply); ref.E == nil || ref.Dir != DirReply {
				t.Fatalf("reply of %v not found", rec.Flow.Orig)
			}
		}
	}
	rd.End()
	checkIndex(t, dst)
	if s := dst.Stats(); s.Imported != n || s.Live != n {
		t.Fatalf("stats %+v", s)
	}
}

func TestImportReplace(t *testing.T) {
	tb := newTable[Key4](t, Config{MaxFlows: 10})
	f := natFlow4(1, 6)
	rec := Record[Key4]{Flow: f, State: StateEstablished, Remaining: 100 * time.Second}
	if err := tb.Import(rec, 0); err != nil {
		t.Fatal(err)
	}
	// Same flow, newer state: refreshed in place.
	rec.State, rec.Remaining = StateFinWait, 20*time.Second
	if err := tb.Import(rec, 10*sec); err != nil {
		t.Fatal(err)
	}
	got := recordsAt(tb, 10*sec)
	if len(got) != 1 || got[f.Orig] != rec {
		t.Fatalf("after update: %+v", got)
	}
	// Same Orig, different backend and NAT port: replaces the old flow.
	g := f
	g.Backend, g.Reply = 42, reply4(2, 6)
	if err := tb.Import(Record[Key4]{Flow: g, State: StateEstablished, Remaining: time.Minute}, 11*sec); err != nil {
		t.Fatal(err)
	}
	got = recordsAt(tb, 11*sec)
	if len(got) != 1 || got[f.Orig].Flow != g {
		t.Fatalf("after replace: %+v", got)
	}
	var gone []Flow[Key4]
	tb.Sweep(12*sec, 0, func(f *Flow[Key4]) { gone = append(gone, *f) })
	if len(gone) != 1 || gone[0] != f {
		t.Fatalf("replaced flow not reported: %v", gone)
	}
	s := tb.Stats()
	if s.Imported != 2 || s.Updated != 1 || s.Replaced != 1 || s.Live != 1 {
		t.Fatalf("stats %+v", s)
	}

	tests := []struct {
		name string
		rec  Record[Key4]
		err  error
	}{
		{"no-time-left", Record[Key4]{Flow: natFlow4(3, 6), State: StateEstablished}, ErrInvalid},
		{"bad-state", Record[Key4]{Flow: natFlow4(3, 6), State: StateUDP, Remaining: time.Second}, ErrInvalid},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if err := tb.Import(tc.rec, 20*sec); err != tc.err {
				t.Fatalf("got %v, want %v", err, tc.err)
			}
		})
	}
	t.Run("full", func(t *testing.T) {
		small := newTable[Key4](t, Config{MaxFlows: 1})
		a := Record[Key4]{Flow: natFlow4(1, 17), State: StateUDP, Remaining: time.Minute}
		b := Record[Key4]{Flow: natFlow4(2, 17), State: StateUDP, Remaining: time.Minute}
		if err := small.Import(a, 0); err != nil {
			t.Fatal(err)
		}
		if err := small.Import(b, 0); err != ErrFull {
			t.Fatalf("got %v, want ErrFull", err)
		}
		if s := small.Stats(); s.Refused != 1 {
			t.Fatalf("refused %d", s.Refused)
		}
	})
}

func TestRangeUsesSweepClock(t *testing.T) {
	tb := newTable[Key4](t, Config{MaxFlows: 10})
	r := tb.NewReader()
	r.Begin()
	f := dsrFlow4(1, 17)
	tb.Insert(&f, StateUDP, 0) // deadline 300 s
	r.End()
	tb.Sweep(100*sec, 10, nil)
	var got []Record[Key4]
	tb.Range(func(r Record[Key4]) bool { got = append(got, r); return true })
	if len(got) != 1 || got[0].Remaining != 200*time.Second {
		t.Fatalf("got %+v", got)
	}
}

// TestExpire: an expired flow is a miss at once, and the next Sweep
// removes and reports it; a second Expire of the dead entry says so.
func TestExpire(t *testing.T) {
	tb := newTable[Key4](t, Config{MaxFlows: 10})
	f := natFlow4(1, 6)
	if err := tb.Import(Record[Key4]{Flow: f, State: StateEstablished, Remaining: time.Hour}, 0); err != nil {
		t.Fatal(err)
	}
	r := tb.NewReader()
	r.Begin()
	ref := tb.Lookup(&f.Orig)
	if ref.E == nil || !tb.Expire(ref.E) {
		t.Fatal("Expire of a live flow failed")
	}
	if _, alive := tb.Track(ref.E, DirOriginal, 0, sec); alive {
		t.Error("an expired flow is still tracked")
	}
	r.End()
	var gone []Flow[Key4]
	tb.Sweep(sec, 100, func(g *Flow[Key4]) { gone = append(gone, *g) })
	if len(gone) != 1 || gone[0] != f {
		t.Fatalf("Sweep reported %v", gone)
	}
	r.Begin()
	if ref := tb.Lookup(&f.Orig); ref.E != nil {
		t.Error("the flow is still indexed after Sweep")
	}
	r.End()
}

func TestTableTimeout(t *testing.T) {
	tb := newTable[Key4](t, Config{MaxFlows: 10, Timeouts: Timeouts{Established: time.Hour}})
	f := natFlow4(1, 6)
	if got := tb.Timeout(&f, StateEstablished); got != time.Hour {
		t.Errorf("Established: %v", got)
	}
	if got, want := tb.Timeout(&f, StateUDP), DefaultTimeouts().UDP; got != want {
		t.Errorf("UDP: %v, want the default %v", got, want)
	}
	p := Flow[Key4]{Orig: key4(2, ProtoPersist), PersistTimeout: 600}
	if got := tb.Timeout(&p, StatePersist); got != 600*time.Second {
		t.Errorf("Persist: %v, want the flow's own 600s", got)
	}
}
