package conntrack

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

// model is the reference for FuzzTable: what a single-threaded table must
// contain after a sequence of operations.
type model struct {
	cap     int
	flows   map[Key4]*mflow // every indexed key -> its flow
	unseen  []Flow[Key4]    // killed by Insert/Import, to be reported by the next Sweep
	retired int             // entries retired by the last Sweep (free at the next)
	inUse   int             // entries not on a free list
}

type mflow struct {
	f  Flow[Key4]
	st State
	dl uint32 // deadline, seconds
}

func (m *model) holder(k Key4) *mflow { return m.flows[k] }

func (m *model) kill(x *mflow) {
	delete(m.flows, x.f.Orig)
	if x.f.HasReply {
		delete(m.flows, x.f.Reply)
	}
	m.unseen = append(m.unseen, x.f)
}

func (m *model) live() int {
	n := 0
	for k, x := range m.flows {
		if k == x.f.Orig {
			n++
		}
	}
	return n
}

// fuzzFlow builds one of a few kinds of flow from a byte. Kinds share keys
// on purpose: kind 2 takes the reply tuple of kind 0 of the next id.
func fuzzFlow(b byte) (Flow[Key4], State) {
	id := uint32(b & 7)
	switch b >> 3 & 3 {
	case 0:
		f := natFlow4(id, 6)
		return f, StateSynSent
	case 1:
		return dsrFlow4(id, 17), StateUDP
	case 2:
		f := natFlow4(id, 6)
		f.Orig.DstPort = 443
		f.Reply = reply4((id+1)&7, 6)
		return f, StateEstablished
	default:
		return Flow[Key4]{Orig: key4(id, ProtoPersist), PersistTimeout: uint32(b>>5)*40 + 10}, StatePersist
	}
}

func FuzzTable(f *testing.F) {
	f.Add([]byte{0, 0, 0, 1, 8, 2, 3, 200, 4, 5})
	f.Add([]byte{0, 1, 0, 2, 0, 3, 0, 4, 0, 5, 0, 6, 0, 7, 0, 9, 0, 10, 3, 255, 4, 0, 0, 11})
	f.Add([]byte{0, 16, 0, 0, 1, 16, 2, 18, 5, 16, 3, 100, 4, 1, 5, 0})
	f.Add([]byte{5, 24, 5, 120, 3, 250, 4, 3, 5, 24, 0, 0, 2, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		const capacity = 6
		tb := newTable[Key4](t, Config{MaxFlows: capacity})
		r := tb.NewReader()
		m := &model{cap: capacity, flows: make(map[Key4]*mflow)}
		tmo := DefaultTimeouts().byState()
		now := Time(0)
		flags := []uint8{FlagSYN, FlagSYN | FlagACK, FlagACK, FlagFIN | FlagACK, FlagRST, 0}
		var allKeys []Key4
		for b := range 32 {
			fl, _ := fuzzFlow(byte(b))
			allKeys = append(allKeys, fl.Orig, fl.Reply)
		}
		batchOut := make([]Ref[Key4], len(allKeys))

		for len(ops) >= 2 {
			op, arg := ops[0]%6, ops[1]
			ops = ops[2:]
			r.Begin()
			switch op {
			case 0: // Insert
				fl, st := fuzzFlow(arg)
				e, err := tb.Insert(&fl, st, now)
				var want error
				var wantE *mflow
				expired := func(x *mflow) bool { return int64(now) >= int64(x.dl)*int64(time.Second) }
				if x := m.holder(fl.Orig); x != nil && !expired(x) {
					want, wantE = ErrExists, x
				} else {
					if x != nil {
						m.kill(x)
					}
					if fl.HasReply {
						if x := m.holder(fl.Reply); x != nil && !expired(x) {
							want, wantE = ErrReplyExists, x
						} else if x != nil {
							m.kill(x)
						}
					}
				}
				if want == nil && m.inUse == m.cap {
					want = ErrFull
				}
				if err != want {
					t.Fatalf("Insert %v: %v, want %v", fl.Orig, err, want)
				}
				switch {
				case want == nil:
					if st == StateUDPUnreplied && fl.OneWay {
						st = StateUDP
					}
					x := &mflow{f: fl, st: st, dl: deadlineOf(e)}
					if e.State() != st || *e.Flow() != fl {
						t.Fatalf("inserted %v %v", e.State(), *e.Flow())
					}
					d := tmo[st]
					if st == StatePersist {
						d = time.Duration(fl.PersistTimeout) * time.Second
					}
					if time.Duration(x.dl)*time.Second < time.Duration(now)+d || time.Duration(x.dl-1)*time.Second >= time.Duration(now)+d {
						t.Fatalf("deadline %d s for timeout %v at %v", x.dl, d, time.Duration(now))
					}
					m.flows[fl.Orig] = x
					if fl.HasReply {
						m.flows[fl.Reply] = x
					}
					m.inUse++
				case wantE != nil:
					if *e.Flow() != wantE.f {
						t.Fatalf("ErrExists returned %v, want %v", e.Flow().Orig, wantE.f.Orig)
					}
				}
			case 1, 2: // Lookup, then Track
				fl, _ := fuzzFlow(arg)
				k, d := fl.Orig, DirOriginal
				if fl.HasReply && op == 2 {
					k, d = fl.Reply, DirReply
				}
				ref := tb.Lookup(&k)
				var batch [1]Ref[Key4]
				tb.LookupBatch([]Key4{k}, batch[:])
				if batch[0] != ref {
					t.Fatal("LookupBatch differs from Lookup")
				}
				x := m.holder(k)
				if (ref.E != nil) != (x != nil) {
					t.Fatalf("Lookup %v: %v, model %v", k, ref.E != nil, x != nil)
				}
				if x == nil {
					break
				}
				wantDir := DirOriginal
				if k != x.f.Orig {
					wantDir = DirReply
				}
				if ref.Dir != wantDir || *ref.E.Flow() != x.f {
					t.Fatalf("Lookup %v: dir %v flow %v", k, ref.Dir, ref.E.Flow().Orig)
				}
				_ = d
				fls := flags[int(arg>>5)%len(flags)]
				st, ok := tb.Track(ref.E, ref.Dir, fls, now)
				alive := int64(now) < int64(x.dl)*int64(time.Second)
				if ok != alive {
					t.Fatalf("Track ok=%v, model alive=%v", ok, alive)
				}
				if ok {
					if st != ref.E.State() || !st.Valid() {
						t.Fatalf("Track returned %v, entry says %v", st, ref.E.State())
					}
					dl := deadlineOf(ref.E)
					tm := tmo[st]
					if st == StatePersist {
						tm = time.Duration(x.f.PersistTimeout) * time.Second
					}
					fresh := deadlineAfter(now, int64(tm))
					if dl != fresh && !(st == x.st && dl == x.dl && x.dl >= fresh) {
						t.Fatalf("deadline %d after Track, fresh %d, old %d", dl, fresh, x.dl)
					}
					x.st, x.dl = st, dl
				}
			case 3: // time passes
				now += Time(arg) * sec / 2
			case 4: // Sweep, full or partial
				budget := capacity
				if arg&1 == 1 {
					budget = int(arg>>1) % capacity
				}
				m.inUse -= m.retired
				var got []Flow[Key4]
				n := tb.Sweep(now, budget, func(f *Flow[Key4]) { got = append(got, *f) })
				if n != len(got) {
					t.Fatalf("Sweep returned %d, reported %d", n, len(got))
				}
				// Everything killed earlier comes first, then expired flows.
				if len(got) < len(m.unseen) || !slices.EqualFunc(sortedFlows(got[:len(m.unseen)]), sortedFlows(m.unseen), func(a, b Flow[Key4]) bool { return a == b }) {
					t.Fatalf("Sweep reported %v, want first %v", got, m.unseen)
				}
				m.retired = len(got)
				for _, f := range got[len(m.unseen):] {
					x := m.holder(f.Orig)
					if x == nil || x.f != f || int64(now) < int64(x.dl)*int64(time.Second) {
						t.Fatalf("Sweep expired %v, not due", f.Orig)
					}
					m.kill(x)
				}
				m.unseen = m.unseen[:0]
				if budget == capacity {
					for k, x := range m.flows {
						if int64(now) >= int64(x.dl)*int64(time.Second) {
							t.Fatalf("full Sweep left %v expired", k)
						}
					}
				}
			case 5: // Import
				fl, st := fuzzFlow(arg)
				rem := time.Duration(arg>>4+1) * 7 * time.Second
				r.End()
				err := tb.Import(Record[Key4]{Flow: fl, State: st, Remaining: rem}, now)
				r.Begin()
				dl := deadlineAfter(now, int64(rem))
				if x := m.holder(fl.Orig); x != nil && x.f == fl {
					if err != nil {
						t.Fatalf("Import update: %v", err)
					}
					x.st, x.dl = st, dl
					break
				}
				for _, k := range []Key4{fl.Orig, fl.Reply} {
					if x := m.holder(k); x != nil && (k == fl.Orig || fl.HasReply) {
						m.kill(x)
					}
				}
				var want error
				if m.inUse == m.cap {
					want = ErrFull
				}
				if err != want {
					t.Fatalf("Import: %v, want %v", err, want)
				}
				if err == nil {
					x := &mflow{f: fl, st: st, dl: dl}
					m.flows[fl.Orig] = x
					if fl.HasReply {
						m.flows[fl.Reply] = x
					}
					m.inUse++
				}
			}
			// Batched lookups of every key the ops can produce agree with
			// single lookups (with and without prefetching).
			for _, pf := range []bool{true, false} {
				tb.lookupBatch(allKeys, batchOut, pf)
				for j := range allKeys {
					if batchOut[j] != tb.Lookup(&allKeys[j]) {
						t.Fatalf("LookupBatch (prefetch %v) %v differs from Lookup", pf, allKeys[j])
					}
				}
			}
			r.End()
			checkIndex(t, tb)
			if s := tb.Stats(); s.Live != m.live() {
				t.Fatalf("Live %d, model %d", s.Live, m.live())
			}
		}
		// Range lists exactly the model's unexpired flows.
		want := 0
		for k, x := range m.flows {
			if k == x.f.Orig && int64(now) < int64(x.dl)*int64(time.Second) {
				want++
			}
		}
		got := 0
		tb.RangeAt(now, func(rec Record[Key4]) bool {
			x := m.holder(rec.Flow.Orig)
			if x == nil || x.f != rec.Flow || x.st != rec.State {
				t.Fatalf("Range: %v %v not in model", rec.Flow.Orig, rec.State)
			}
			got++
			return true
		})
		if got != want {
			t.Fatalf("Range listed %d, want %d", got, want)
		}
	})
}

func sortedFlows(fs []Flow[Key4]) []Flow[Key4] {
	out := slices.Clone(fs)
	slices.SortFunc(out, func(a, b Flow[Key4]) int {
		return strings.Compare(fmt.Sprint(a), fmt.Sprint(b))
	})
	return out
}
