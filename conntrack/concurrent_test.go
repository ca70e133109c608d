package conntrack

import (
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// checkFlow4 verifies a flow built by natFlow4/dsrFlow4 for id f.Service
// is intact: a torn or reused entry would mix two flows.
func flowIntact(f *Flow[Key4]) bool {
	id := f.Service
	p := f.Orig.Proto
	if f.Orig != key4(id, p) {
		return false
	}
	if f.HasReply {
		return f.Reply == reply4(id, p) && !f.OneWay
	}
	return f.OneWay && f.Backend == id%5
}

func testFlow(id uint32) Flow[Key4] {
	p := uint8(6)
	if id%3 == 0 {
		p = 17
	}
	var f Flow[Key4]
	if id%2 == 0 {
		f = natFlow4(id, p)
	} else {
		f = dsrFlow4(id, p)
	}
	f.Service = id
	return f
}

// TestConcurrent runs workers that look up, insert and track random flows
// (a key space twice the capacity, so the table is often full and the
// same key is often inserted by two workers at once) while a sweeper
// expires and reclaims and a control goroutine ranges and imports. No
// lookup may return an entry holding another key, and no entry may change
// under a worker between its Begin and End.
func TestConcurrent(t *testing.T) {
	const (
		capacity = 2048
		ids      = 2 * capacity
		workers  = 4
	)
	batches := 10000
	if testing.Short() || raceEnabled {
		batches = 400
	}
	tb := newTable[Key4](t, Config{MaxFlows: capacity, Timeouts: Timeouts{
		SynSent: 2 * time.Second, SynRecv: 2 * time.Second, Established: 3 * time.Second,
		FinWait: 2 * time.Second, TimeWait: 2 * time.Second, Close: time.Second,
		UDPUnreplied: time.Second, UDP: 2 * time.Second,
	}})
	var clock atomic.Int64
	clock.Store(int64(10 * sec))
	var stop atomic.Bool
	var reported atomic.Int64
	var bad atomic.Value
	fail := func(format string) { bad.CompareAndSwap(nil, format) }

	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			r := tb.NewReader()
			rng := rand.New(rand.NewPCG(uint64(w), 99))
			keys := make([]Key4, MaxBatch)
			idOf := make([]uint32, MaxBatch)
			out := make([]Ref[Key4], MaxBatch)
			held := make([]Flow[Key4], MaxBatch)
			for b := 0; b < batches && bad.Load() == nil; b++ {
				runtime.Gosched() // let the sweeper in (2 cores, 6 goroutines)
				r.Begin()
				now := Time(clock.Add(int64(sec / 50)))
				for i := range keys {
					id := rng.Uint32N(ids)
					f := testFlow(id)
					idOf[i] = id
					keys[i] = f.Orig
					if f.HasReply && rng.IntN(2) == 0 {
						keys[i] = f.Reply
					}
				}
				tb.LookupBatch(keys, out)
				for i, ref := range out {
					if ref.E == nil {
						continue
					}
					if *ref.E.key(ref.Dir) != keys[i] {
						fail("lookup returned an entry with another key")
					}
					held[i] = *ref.E.Flow()
					if !flowIntact(&held[i]) {
						fail("torn flow")
					}
					flags := []uint8{FlagSYN, FlagACK, FlagACK, FlagACK, FlagFIN | FlagACK, FlagRST, FlagSYN | FlagACK}[rng.IntN(7)]
					tb.Track(ref.E, ref.Dir, flags, now)
				}
				for i, ref := range out {
					if ref.E != nil {
						continue
					}
					if ref := tb.Lookup(&keys[i]); ref.E != nil && *ref.E.key(ref.Dir) != keys[i] {
						fail("Lookup returned an entry with another key")
					}
					f := testFlow(idOf[i])
					st := StateSynSent
					if f.Orig.Proto == 17 {
						st = StateUDPUnreplied
					}
					e, err := tb.Insert(&f, st, now)
					switch err {
					case nil:
						if *e.Flow() != f {
							fail("inserted flow differs")
						}
					case ErrExists, ErrReplyExists:
						g := *e.Flow()
						if !flowIntact(&g) || err == ErrExists && g.Orig != f.Orig {
							fail("ErrExists returned a wrong entry")
						}
					case ErrFull:
					default:
						fail("unexpected error " + err.Error())
					}
				}
				// Entries obtained in this batch are still the same flows.
				for i, ref := range out {
					if ref.E != nil && *ref.E.Flow() != held[i] {
						fail("entry reused inside a batch")
					}
				}
				r.End()
			}
		}()
	}

	var side sync.WaitGroup
	side.Add(2)
	go func() { // sweeper; the workers advance the clock, 20 ms per batch
		defer side.Done()
		for !stop.Load() {
			tb.Sweep(Time(clock.Load()), capacity/2, func(f *Flow[Key4]) {
				if !flowIntact(f) {
					fail("sweep reported a torn flow")
				}
				reported.Add(1)
			})
			runtime.Gosched()
		}
	}()
	go func() { // control plane: show conntrack and HA import
		defer side.Done()
		rng := rand.New(rand.NewPCG(7, 7))
		for !stop.Load() {
			tb.Range(func(r Record[Key4]) bool {
				if !flowIntact(&r.Flow) || !r.State.Valid() || r.Remaining <= 0 {
					fail("Range returned a bad record")
				}
				return true
			})
			f := testFlow(rng.Uint32N(ids))
			st := StateEstablished
			if f.Orig.Proto == 17 {
				st = StateUDP
			}
			tb.Import(Record[Key4]{Flow: f, State: st, Remaining: time.Second}, Time(clock.Load()))
			time.Sleep(time.Millisecond)
		}
	}()
	wg.Wait()
	stop.Store(true)
	side.Wait()
	if msg := bad.Load(); msg != nil {
		t.Fatal(msg)
	}

	s := tb.Stats()
	t.Logf("stats %+v", s)
	if s.Inserted == 0 || s.Refused == 0 || s.Expired == 0 {
		t.Fatalf("the test did not exercise insert, full and expiry: %+v", s)
	}
	// Expire everything: every flow that was ever live is reported once.
	far := Time(clock.Load()) + 1000*sec
	for range 3 {
		tb.Sweep(far, capacity, func(*Flow[Key4]) { reported.Add(1) })
	}
	s = tb.Stats()
	if s.Live != 0 || s.Reclaiming != 0 || countSlots(tb) != 0 || overflowed(tb) != 0 {
		t.Fatalf("after expiring all: %+v, %d slots", s, countSlots(tb))
	}
	if got, want := uint64(reported.Load()), s.Inserted+s.Imported; got != want {
		t.Fatalf("reported %d flows, %d were inserted or imported", got, want)
	}
	// The whole arena can be allocated again: nothing leaked.
	r := tb.NewReader()
	r.Begin()
	defer r.End()
	for i := range uint32(capacity) {
		f := natFlow4(100000+i, 17)
		if _, err := tb.Insert(&f, StateUDP, far); err != nil {
			t.Fatalf("refill %d: %v", i, err)
		}
	}
	checkIndex(t, tb)
}

// TestConcurrentSameKey has several workers insert the same new key at the
// same moment, round after round. Each round must end with exactly one
// copy of each key in the index, found by Lookup, and at least one
// worker told success.
func TestConcurrentSameKey(t *testing.T) {
	workers := max(runtime.GOMAXPROCS(0), 2)
	rounds := 1000
	if testing.Short() || raceEnabled {
		rounds = 200
	}
	tb := newTable[Key4](t, Config{MaxFlows: 4 * rounds})
	var start, done sync.WaitGroup
	var ok atomic.Int32
	var gate atomic.Int32
	readers := make([]*Reader, workers)
	for w := range readers {
		readers[w] = tb.NewReader()
	}
	for round := range uint32(rounds) {
		f := testFlow(round)
		st := StateSynSent
		if f.Orig.Proto == 17 {
			st = StateUDPUnreplied
		}
		ok.Store(0)
		gate.Store(0)
		start.Add(workers)
		done.Add(workers)
		for w := range workers {
			go func() {
				defer done.Done()
				start.Done()
				gate.Add(1)
				for gate.Load() < int32(workers) { // all insert together
					if workers > runtime.GOMAXPROCS(0) {
						runtime.Gosched()
					}
				}
				r := readers[w]
				r.Begin()
				e, err := tb.Insert(&f, st, 0)
				switch err {
				case nil:
					ok.Add(1)
				case ErrExists, ErrReplyExists:
					if e.flow.Service != round {
						t.Error("ErrExists with another flow")
					}
				default:
					t.Error(err)
				}
				r.End()
			}()
		}
		done.Wait()
		if ok.Load() < 1 {
			t.Fatalf("round %d: nobody inserted", round)
		}
		r := readers[0]
		r.Begin()
		if ref := tb.Lookup(&f.Orig); ref.E == nil || ref.E.flow.Orig != f.Orig {
			t.Fatalf("round %d: key not found", round)
		}
		r.End()
	}
	tb.Sweep(0, 0, nil) // retire abandoned inserts
	checkIndex(t, tb)   // one slot per key, overflow counts exact
	s := tb.Stats()
	t.Logf("stats %+v", s)
}

// TestSettle drives the duplicate resolution step by step: two pending
// inserts of one key, the one at the later probe position loses.
func TestSettle(t *testing.T) {
	tb := newTable[Key4](t, Config{MaxFlows: 16})
	r := tb.NewReader()
	r.Begin()
	defer r.End()
	f := dsrFlow4(1, 6)
	h := tb.Hash(&f.Orig)
	sh := &tb.shards[0]
	publish := func() (uint32, uint64, int) {
		idx, _ := tb.alloc(0)
		tb.arena[idx].flow = f
		tb.arena[idx].word.Store(kindPending)
		v := slotVal(h, idx, DirOriginal)
		return idx, v, tb.place(h, v)
	}
	ia, va, pa := publish()
	ib, vb, pb := publish()
	if pa >= pb {
		t.Fatalf("positions %d, %d", pa, pb)
	}
	// b (later) sees a and loses.
	if x := tb.settle(&f.Orig, h, vb, pb, sh); x != &tb.arena[ia] {
		t.Fatalf("later insert did not lose to the earlier: %v", x)
	}
	// a (earlier) sees b and removes b's slot.
	if x := tb.settle(&f.Orig, h, va, pa, sh); x != nil {
		t.Fatal("earlier insert lost")
	}
	if tb.position(h, vb) != -1 || tb.position(h, va) != pa {
		t.Fatal("b's slot not removed or a's moved")
	}
	// b backing out finds its slot gone and leaves the counts alone.
	if tb.unlink(h, vb) {
		t.Fatal("b's slot removed twice")
	}
	tb.arena[ia].word.Store(liveWord(StateSynSent, 0, 100))
	tb.arena[ib].word.Store(linkWord(kindDead, 0))
	checkIndex(t, tb)
	// A live holder always wins, whatever its position.
	ic, vc, pc := publish()
	if x := tb.settle(&f.Orig, h, vc, pc, sh); x != &tb.arena[ia] {
		t.Fatal("pending insert beat a live flow")
	}
	tb.unlink(h, vc)
	_ = ic
	if s := tb.Stats(); s.Clashes != 3 {
		t.Fatalf("clashes %d", s.Clashes)
	}
}
