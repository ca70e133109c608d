package conntrack

import (
	"errors"
	"math/rand/v2"
	"slices"
	"testing"
	"time"
)

func TestNewConfig(t *testing.T) {
	tests := []struct {
		name string
		cfg  Config
		ok   bool
	}{
		{"zero", Config{}, false},
		{"negative", Config{MaxFlows: -1}, false},
		{"too-big", Config{MaxFlows: MaxFlowsLimit + 1}, false},
		{"negative-timeout", Config{MaxFlows: 1, Timeouts: Timeouts{UDP: -time.Second}}, false},
		{"huge-timeout", Config{MaxFlows: 1, Timeouts: Timeouts{Established: 2 * maxTimeout}}, false},
		{"one", Config{MaxFlows: 1}, true},
		{"random-seed", Config{MaxFlows: 100}, true},
		{"huge-pages", Config{MaxFlows: 100_000, HugePages: true}, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb, err := New[Key4](tc.cfg)
			if (err == nil) != tc.ok {
				t.Fatalf("err = %v, want ok=%v", err, tc.ok)
			}
			if err == nil && tb.Capacity() != tc.cfg.MaxFlows {
				t.Fatalf("capacity %d", tb.Capacity())
			}
		})
	}
}

func TestIndexSizing(t *testing.T) {
	for _, n := range []int{1, 7, 1000, 10_000, 1 << 20, 10_000_000} {
		nb := indexBuckets(n)
		if nb&(nb-1) != 0 {
			t.Fatalf("%d flows: %d buckets, not a power of two", n, nb)
		}
		if load := float64(2*n) / float64(nb*slotsPerBucket); load > 0.75 {
			t.Fatalf("%d flows: full load %.2f > 0.75", n, load)
		}
	}
	if nb := indexBuckets(10_000_000); nb != 1<<22 {
		t.Fatalf("10M flows: %d buckets, want 4Mi (256 MiB)", nb)
	}
}

func TestLookupBothKeys(t *testing.T) {
	tb := newTable[Key4](t, Config{MaxFlows: 100})
	r := tb.NewReader()
	r.Begin()
	defer r.End()
	nat, dsr := natFlow4(1, 6), dsrFlow4(2, 6)
	en, err := tb.Insert(&nat, StateSynSent, 0)
	if err != nil {
		t.Fatal(err)
	}
	ed, err := tb.Insert(&dsr, StateSynSent, 0)
	if err != nil {
		t.Fatal(err)
	}
	missing := key4(3, 6)
	dsrReply := reply4(2, 6)
	tests := []struct {
		name string
		key  Key4
		want Ref[Key4]
	}{
		{"nat/orig", nat.Orig, Ref[Key4]{en, DirOriginal}},
		{"nat/reply", nat.Reply, Ref[Key4]{en, DirReply}},
		{"dsr/orig", dsr.Orig, Ref[Key4]{ed, DirOriginal}},
		{"dsr/reply-not-indexed", dsrReply, Ref[Key4]{}},
		{"missing", missing, Ref[Key4]{}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := tb.Lookup(&tc.key); got != tc.want {
				t.Fatalf("Lookup = %+v, want %+v", got, tc.want)
			}
			var out [1]Ref[Key4]
			tb.LookupBatch([]Key4{tc.key}, out[:])
			if out[0] != tc.want {
				t.Fatalf("LookupBatch = %+v, want %+v", out[0], tc.want)
			}
		})
	}
	if en.Flow().Backend != nat.Backend || *en.Flow() != nat {
		t.Fatal("flow not stored as given")
	}
	checkIndex(t, tb)
}

func TestInsertExists(t *testing.T) {
	tb := newTable[Key4](t, Config{MaxFlows: 100})
	r := tb.NewReader()
	r.Begin()
	defer r.End()
	a := natFlow4(1, 6)
	ea, err := tb.Insert(&a, StateSynSent, 0)
	if err != nil {
		t.Fatal(err)
	}
	sameOrig := natFlow4(1, 6)
	sameOrig.Reply = reply4(99, 6)
	replyClash := natFlow4(2, 6)
	replyClash.Reply = a.Reply
	replyIsOrig := natFlow4(3, 6)
	replyIsOrig.Reply = a.Orig
	origIsReply := dsrFlow4(4, 6)
	origIsReply.Orig = a.Reply
	tests := []struct {
		name string
		f    Flow[Key4]
		err  error
	}{
		{"same-orig", sameOrig, ErrExists},
		{"reply-clash", replyClash, ErrReplyExists},
		{"reply-is-other-orig", replyIsOrig, ErrReplyExists},
		{"orig-is-other-reply", origIsReply, ErrExists},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			e, err := tb.Insert(&tc.f, StateSynSent, sec)
			if err != tc.err || e != ea {
				t.Fatalf("got %p, %v; want %p, %v", e, err, ea, tc.err)
			}
			if !errors.Is(err, ErrExists) {
				t.Fatal("not errors.Is ErrExists")
			}
		})
	}
	s := tb.Stats()
	if s.Exists != uint64(len(tests)) || s.Inserted != 1 || s.Live != 1 {
		t.Fatalf("stats %+v", s)
	}
	checkIndex(t, tb)
}

// TestExpiry: a flow expires exactly when its deadline (rounded up to the
// second) passes; Sweep reports it once; both keys leave the index; its
// entry is reused after the grace period.
func TestExpiry(t *testing.T) {
	tb := newTable[Key4](t, Config{MaxFlows: 1, Timeouts: Timeouts{SynSent: 60 * time.Second}})
	r := tb.NewReader()
	f := natFlow4(1, 6)
	r.Begin()
	e, err := tb.Insert(&f, StateSynSent, sec/2) // deadline ceil(60.5 s) = 61 s
	r.End()
	if err != nil {
		t.Fatal(err)
	}
	var got []Flow[Key4]
	cb := func(f *Flow[Key4]) { got = append(got, *f) }

	if n := tb.Sweep(61*sec-1, 10, cb); n != 0 || len(got) != 0 {
		t.Fatalf("expired %d before the deadline", n)
	}
	r.Begin()
	if tb.Lookup(&f.Orig).E != e || tb.Lookup(&f.Reply).E != e {
		t.Fatal("lost before the deadline")
	}
	if _, ok := tb.Track(e, DirOriginal, FlagSYN, 61*sec); ok {
		t.Fatal("Track accepted an expired flow")
	}
	r.End()

	if n := tb.Sweep(61*sec, 10, cb); n != 1 || len(got) != 1 || got[0] != f {
		t.Fatalf("Sweep at the deadline: %d, %v", n, got)
	}
	if n := tb.Sweep(62*sec, 10, cb); n != 0 || len(got) != 1 {
		t.Fatalf("reported twice: %d", n)
	}
	r.Begin()
	if ref := tb.Lookup(&f.Orig); ref.E != nil {
		t.Fatal("orig still indexed")
	}
	if ref := tb.Lookup(&f.Reply); ref.E != nil {
		t.Fatal("reply still indexed")
	}
	if e.State() != StateNone {
		t.Fatalf("expired entry state %v", e.State())
	}
	// The single entry has been reclaimed by the second Sweep; it is reused.
	g := natFlow4(2, 17)
	e2, err := tb.Insert(&g, StateUDPUnreplied, 62*sec)
	r.End()
	if err != nil || e2 != e {
		t.Fatalf("reuse: %p %v, want %p", e2, err, e)
	}
	if s := tb.Stats(); s.Expired != 1 || s.Inserted != 2 || s.Live != 1 || s.Reclaiming != 0 {
		t.Fatalf("stats %+v", s)
	}
	checkIndex(t, tb)
}

// TestFull: a full table refuses and counts, never evicts, and accepts
// again once flows expire.
func TestFull(t *testing.T) {
	const n = 1000
	tb := newTable[Key4](t, Config{MaxFlows: n})
	r := tb.NewReader()
	r.Begin()
	for i := range uint32(n) {
		f := natFlow4(i, 17)
		if _, err := tb.Insert(&f, StateUDP, 0); err != nil {
			t.Fatalf("flow %d: %v", i, err)
		}
	}
	for i := range uint32(10) {
		f := natFlow4(n+i, 17)
		if e, err := tb.Insert(&f, StateUDP, sec); err != ErrFull || e != nil {
			t.Fatalf("insert into full table: %v %v", e, err)
		}
	}
	if s := tb.Stats(); s.Refused != 10 || s.Live != n {
		t.Fatalf("stats %+v", s)
	}
	for i := range uint32(n) { // nothing was evicted
		k := key4(i, 17)
		if tb.Lookup(&k).E == nil {
			t.Fatalf("flow %d evicted", i)
		}
	}
	checkIndex(t, tb)
	r.End()

	// Keep half alive, let the other half expire.
	r.Begin()
	for i := uint32(0); i < n; i += 2 {
		k := key4(i, 17)
		tb.Track(tb.Lookup(&k).E, DirOriginal, 0, 200*sec)
	}
	r.End()
	exp := 0
	exp += tb.Sweep(301*sec, n, func(*Flow[Key4]) {})
	exp += tb.Sweep(301*sec, 0, nil) // grace period passed: reclaim
	if exp != n/2 {
		t.Fatalf("expired %d, want %d", exp, n/2)
	}
	r.Begin()
	defer r.End()
	for i := range uint32(n / 2) {
		f := natFlow4(n+i, 17)
		if _, err := tb.Insert(&f, StateUDP, 301*sec); err != nil {
			t.Fatalf("after expiry, flow %d: %v", i, err)
		}
	}
	f := natFlow4(2*n, 17)
	if _, err := tb.Insert(&f, StateUDP, 301*sec); err != ErrFull {
		t.Fatalf("want full again, got %v", err)
	}
	checkIndex(t, tb)
}

// TestGracePeriod: an entry removed while a reader is inside a batch is
// not reused until that reader ends its batch.
func TestGracePeriod(t *testing.T) {
	tb := newTable[Key4](t, Config{MaxFlows: 1})
	w := tb.NewReader()
	f := natFlow4(1, 17)
	w.Begin()
	e, _ := tb.Insert(&f, StateUDP, 0)
	w.End()

	w.Begin() // a worker holds e across the expiry
	if tb.Lookup(&f.Orig).E != e {
		t.Fatal("lookup")
	}
	if n := tb.Sweep(400*sec, 10, nil); n != 1 {
		t.Fatalf("expired %d", n)
	}
	tb.Sweep(401*sec, 10, nil)
	tb.Sweep(402*sec, 10, nil)
	g := natFlow4(2, 17)
	if _, err := tb.Insert(&g, StateUDP, 402*sec); err != ErrFull {
		t.Fatalf("entry reused while a reader may hold it: %v", err)
	}
	if e.flow != f {
		t.Fatal("held entry changed")
	}
	if s := tb.Stats(); s.Reclaiming != 1 {
		t.Fatalf("reclaiming %d", s.Reclaiming)
	}
	w.End()

	tb.Sweep(403*sec, 10, nil)
	w.Begin()
	defer w.End()
	if e2, err := tb.Insert(&g, StateUDP, 403*sec); err != nil || e2 != e {
		t.Fatalf("after End: %p %v", e2, err)
	}
}

// TestRetireRingOverflow: more Sweeps than retireRing while a reader is
// stuck merge batches instead of losing entries.
func TestRetireRingOverflow(t *testing.T) {
	const n = 3 * retireRing
	tb := newTable[Key4](t, Config{MaxFlows: n})
	w, stuck := tb.NewReader(), tb.NewReader()
	w.Begin()
	for i := range uint32(n) {
		f := natFlow4(i, 17)
		// Deadlines spread one second apart so each Sweep retires one.
		if _, err := tb.Insert(&f, StateUDP, Time(i)*sec); err != nil {
			t.Fatal(err)
		}
	}
	w.End()
	stuck.Begin()
	for i := range n {
		tb.Sweep(Time(300+i+1)*sec, n, nil)
	}
	if s := tb.Stats(); s.Reclaiming != n || s.Live != 0 {
		t.Fatalf("stats %+v", s)
	}
	stuck.End()
	tb.Sweep(Time(1000)*sec, 0, nil)
	if s := tb.Stats(); s.Reclaiming != 0 {
		t.Fatalf("reclaiming %d after the reader left", s.Reclaiming)
	}
	w.Begin()
	defer w.End()
	for i := range uint32(n) {
		f := natFlow4(n+i, 17)
		if _, err := tb.Insert(&f, StateUDP, 1000*sec); err != nil {
			t.Fatalf("reinsert %d: %v", i, err)
		}
	}
}

// TestInsertReplacesExpired: a new flow whose key belongs to a flow past
// its deadline (not swept yet) replaces it; Sweep reports the old one.
func TestInsertReplacesExpired(t *testing.T) {
	tb := newTable[Key4](t, Config{MaxFlows: 10})
	r := tb.NewReader()
	r.Begin()
	old := natFlow4(1, 6)
	eo, _ := tb.Insert(&old, StateClose, 0) // deadline 10 s
	nf := natFlow4(1, 6)
	nf.Reply = reply4(2, 6) // new NAT port
	nf.Backend = 3
	if e, err := tb.Insert(&nf, StateSynSent, 10*sec-1); err != ErrExists || e != eo {
		t.Fatalf("before the deadline: %v", err)
	}
	en, err := tb.Insert(&nf, StateSynSent, 10*sec)
	if err != nil {
		t.Fatal(err)
	}
	if ref := tb.Lookup(&old.Orig); ref.E != en {
		t.Fatal("orig does not find the new flow")
	}
	if ref := tb.Lookup(&old.Reply); ref.E != nil {
		t.Fatal("old reply key still indexed")
	}
	checkIndex(t, tb)
	r.End()
	var got []Flow[Key4]
	if n := tb.Sweep(10*sec, 0, func(f *Flow[Key4]) { got = append(got, *f) }); n != 1 || len(got) != 1 || got[0] != old {
		t.Fatalf("Sweep reported %d %v, want the old flow", n, got)
	}
	if s := tb.Stats(); s.Expired != 1 || s.Live != 1 {
		t.Fatalf("stats %+v", s)
	}
}

// TestOverflowChains fills tables of several sizes to capacity (at 3/4
// load some buckets overflow), expires the flows in waves and checks the
// overflow counts all along.
func TestOverflowChains(t *testing.T) {
	for _, n := range []int{1, 2, 7, 50, 500} {
		tb := newTable[Key4](t, Config{MaxFlows: n})
		r := tb.NewReader()
		r.Begin()
		for i := range uint32(n) {
			f := natFlow4(i, 6)
			if _, err := tb.Insert(&f, StateEstablished, Time(i%300)*sec); err != nil {
				t.Fatalf("n=%d flow %d: %v", n, i, err)
			}
		}
		checkIndex(t, tb)
		if n == 500 && overflowed(tb) == 0 {
			t.Fatal("no bucket overflowed; the test does not exercise probing")
		}
		for i := range uint32(n) {
			for _, k := range []Key4{key4(i, 6), reply4(i, 6)} {
				if tb.Lookup(&k).E == nil {
					t.Fatalf("n=%d: lost %v", n, k)
				}
			}
		}
		r.End()
		// Expire in waves (deadlines differ by flow).
		for s := 900; s < 1300; s += 37 {
			tb.Sweep(Time(s)*sec, n, nil)
			checkIndex(t, tb)
		}
		if c := countSlots(tb); c != 0 {
			t.Fatalf("n=%d: %d slots left", n, c)
		}
	}
}

func TestLookupBatchMatchesLookup(t *testing.T) {
	const n = 5000
	tb := newTable[Key4](t, Config{MaxFlows: n})
	r := tb.NewReader()
	r.Begin()
	defer r.End()
	for i := range uint32(n) {
		f := natFlow4(i, 6)
		if i%3 == 0 {
			f = dsrFlow4(i, 6)
		}
		tb.Insert(&f, StateEstablished, 0)
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, size := range []int{0, 1, 63, 64, 65, 200} {
		keys := make([]Key4, size)
		for i := range keys {
			j := rng.Uint32N(2 * n) // half misses
			if rng.IntN(2) == 0 {
				keys[i] = key4(j, 6)
			} else {
				keys[i] = reply4(j, 6)
			}
		}
		for _, pf := range []bool{true, false} {
			out := make([]Ref[Key4], size+3)
			tb.lookupBatch(keys, out, pf)
			hits := 0
			for i := range keys {
				want := tb.Lookup(&keys[i])
				if out[i] != want {
					t.Fatalf("size %d key %d %v: batch %+v, lookup %+v", size, i, keys[i], out[i], want)
				}
				if want.E != nil {
					hits++
					if *want.E.key(want.Dir) != keys[i] {
						t.Fatal("lookup returned another key")
					}
				}
			}
			if size >= 63 && (hits == 0 || hits == size) {
				t.Fatalf("size %d: %d hits; the test needs both hits and misses", size, hits)
			}
		}
	}
}

func TestKey6(t *testing.T) {
	tb := newTable[Key6](t, Config{MaxFlows: 300})
	r := tb.NewReader()
	r.Begin()
	for i := range uint32(300) {
		f := Flow[Key6]{Orig: key6(i, 6), Reply: reply6(i, 6), HasReply: true}
		if _, err := tb.Insert(&f, StateSynSent, 0); err != nil {
			t.Fatal(err)
		}
	}
	keys := make([]Key6, 0, 600)
	for i := range uint32(300) {
		keys = append(keys, key6(i, 6), reply6(i, 6), key6(i+1000, 6))
	}
	for _, pf := range []bool{true, false} {
		out := make([]Ref[Key6], len(keys))
		tb.lookupBatch(keys, out, pf)
		for i, k := range keys {
			want := i%3 != 2
			if (out[i].E != nil) != want {
				t.Fatalf("prefetch %v key %d %v: %+v", pf, i, k, out[i])
			}
			if want && (*out[i].E.key(out[i].Dir) != k || out[i].Dir != Dir(i%3)) {
				t.Fatalf("prefetch %v key %d: wrong entry", pf, i)
			}
		}
	}
	checkIndex(t, tb)
	r.End()
	if n := tb.Sweep(60*sec, 1000, nil); n != 300 {
		t.Fatalf("expired %d", n)
	}
	checkIndex(t, tb)
}

func TestKeyPaddingIgnored(t *testing.T) {
	tb := newTable[Key4](t, Config{MaxFlows: 10})
	a := key4(1, 6)
	b := a
	// Dirty the blank padding the way only unsafe code could.
	(*[16]byte)(keyBytes(&b))[15] = 0xaa
	if a != b {
		t.Fatal("language equality should ignore padding")
	}
	if tb.Hash(&a) != tb.Hash(&b) || !keyEqual(&a, &b) {
		t.Fatal("hash or keyEqual reads the padding")
	}
	c := a
	c.Proto = 17
	if keyEqual(&a, &c) || tb.Hash(&a) == tb.Hash(&c) {
		t.Fatal("proto ignored")
	}
}

func TestHashSpread(t *testing.T) {
	// Sequential keys (ports, addresses) must spread evenly over buckets
	// and tags; a weak hash would pile them up.
	tb := newTable[Key4](t, Config{MaxFlows: 1 << 16})
	counts := make([]int, len(tb.buckets))
	tags := make(map[uint32]bool)
	const n = 1 << 17
	for i := range uint32(n) {
		k := key4(i, 6)
		h := tb.Hash(&k)
		counts[h&tb.mask]++
		tags[tagOf(h)] = true
	}
	mean := float64(n) / float64(len(counts))
	maxc := slices.Max(counts)
	if float64(maxc) > mean*4 {
		t.Fatalf("bucket load max %d, mean %.1f", maxc, mean)
	}
	if len(tags) < n*99/100 {
		t.Fatalf("only %d distinct tags for %d keys", len(tags), n)
	}
	// Different seeds, different hashes.
	other := newTable[Key4](t, Config{MaxFlows: 16, Seed: 99})
	k := key4(1, 6)
	if tb.Hash(&k) == other.Hash(&k) {
		t.Fatal("seed ignored")
	}
}

func TestPrefetchSafe(t *testing.T) {
	// Prefetching any address, mapped or not, must not fault.
	for _, a := range []uintptr{0, 1, ^uintptr(0) >> 17, ^uintptr(0)} {
		prefetch(a)
	}
	addrs := []uintptr{0, 64, ^uintptr(0) >> 24}
	prefetchN(&addrs[0], len(addrs))
	prefetchN(&addrs[0], 0)
}

func overflowed[K Key](tb *Table[K]) int {
	n := 0
	for b := range tb.buckets {
		if tb.buckets[b].ovf.Load() != 0 {
			n++
		}
	}
	return n
}

// TestLongProbeChain piles 120 keys onto one home bucket (found by
// searching keys with the table's seed), so they spill over some 17
// buckets, then removes them in random order.
func TestLongProbeChain(t *testing.T) {
	tb := newTable[Key4](t, Config{MaxFlows: 500})
	const home, n = 5, 120
	var flows, absent []Flow[Key4] // absent: same home, never inserted
	for i := uint32(0); len(absent) < n; i++ {
		f := dsrFlow4(i, 17)
		if tb.Hash(&f.Orig)&tb.mask == home {
			if len(flows) < n {
				flows = append(flows, f)
			} else {
				absent = append(absent, f)
			}
		}
	}
	r := tb.NewReader()
	r.Begin()
	rng := rand.New(rand.NewPCG(3, 4))
	for i := range flows {
		// Deadlines spread over 100 s: expiry removes them in random order.
		if _, err := tb.Insert(&flows[i], StateUDP, Time(rng.IntN(100))*sec); err != nil {
			t.Fatal(err)
		}
	}
	checkIndex(t, tb)
	if got := tb.buckets[home].ovf.Load(); got != n-slotsPerBucket {
		t.Fatalf("home ovf %d, want %d", got, n-slotsPerBucket)
	}
	keys := make([]Key4, 0, 2*n)
	for i := range flows {
		keys = append(keys, flows[i].Orig, absent[i].Orig) // a hit, and a miss that walks the chain
	}
	for _, pf := range []bool{true, false} {
		out := make([]Ref[Key4], len(keys))
		tb.lookupBatch(keys, out, pf)
		for i := range keys {
			if want := tb.Lookup(&keys[i]); out[i] != want || (i%2 == 0) != (want.E != nil) {
				t.Fatalf("prefetch %v key %d: batch %+v lookup %+v", pf, i, out[i], want)
			}
		}
	}
	r.End()
	for s := 300; s <= 400; s += 3 {
		tb.Sweep(Time(s)*sec, 500, nil)
		checkIndex(t, tb)
		r.Begin()
		for i := range flows {
			ref := tb.Lookup(&flows[i].Orig)
			if ref.E != nil && *ref.E.key(ref.Dir) != flows[i].Orig {
				t.Fatal("wrong key")
			}
		}
		r.End()
	}
	if c := countSlots(tb); c != 0 || overflowed(tb) != 0 {
		t.Fatalf("%d slots, %d overflowed buckets left", c, overflowed(tb))
	}
}

func TestEntryLines(t *testing.T) {
	check := func(t *testing.T, w, ks, size uintptr, lines []uintptr) {
		covered := func(a uintptr) bool {
			for _, l := range lines {
				if l/cacheLine == a/cacheLine {
					return true
				}
			}
			return false
		}
		for a := w; a < w+8; a++ {
			if !covered(a) {
				t.Fatalf("word byte %#x not prefetched", a)
			}
		}
		for a := ks; a < ks+size; a++ {
			if !covered(a) {
				t.Fatalf("key byte %#x not prefetched", a)
			}
		}
	}
	t4 := newTable[Key4](t, Config{MaxFlows: 8})
	for i := range t4.arena {
		e := &t4.arena[i]
		for _, d := range []Dir{DirOriginal, DirReply} {
			var dst [3]uintptr
			n := entryLines(dst[:], &e.word, e.key(d))
			if n != 1 {
				t.Fatalf("Key4 entry %d: %d lines, want 1 (entries are one aligned line)", i, n)
			}
			check(t, addrOf(&e.word), addrOf(e.key(d)), Key4Size, dst[:n])
		}
	}
	t6 := newTable[Key6](t, Config{MaxFlows: 16})
	for i := range t6.arena {
		e := &t6.arena[i]
		for _, d := range []Dir{DirOriginal, DirReply} {
			var dst [3]uintptr
			n := entryLines(dst[:], &e.word, e.key(d))
			check(t, addrOf(&e.word), addrOf(e.key(d)), Key6Size, dst[:n])
		}
	}
}
