package sched

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"math/bits"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
)

// referenceMaglev is the paper's population loop written plainly, with the
// credit rule for weights, as an independent check on NewMaglev: explicit
// permutation arithmetic with %, an int table with -1 for free, and the
// literal per-round credit loop.
func referenceMaglev(key HashKey, size int, pool []Backend) []uint32 {
	var bs []Backend
	for _, b := range pool {
		if b.Weight > 0 {
			bs = append(bs, b)
		}
	}
	slices.SortFunc(bs, func(a, b Backend) int {
		a16, b16 := a.Addr.As16(), b.Addr.As16()
		if c := bytes.Compare(a16[:], b16[:]); c != 0 {
			return c
		}
		return int(a.Port) - int(b.Port)
	})
	if len(bs) == 0 {
		return nil
	}
	M := uint64(size)
	offset := make([]uint64, len(bs))
	skip := make([]uint64, len(bs))
	for i, b := range bs {
		a := b.Addr.As16()
		msg := append(a[:], byte(b.Port>>8), byte(b.Port), 'o')
		offset[i] = sipHash24(&key, msg) % M
		msg[len(msg)-1] = 's'
		skip[i] = sipHash24(&key, msg)%(M-1) + 1
	}
	var maxW uint64
	for _, b := range bs {
		maxW = max(maxW, uint64(b.Weight))
	}
	entry := make([]int, size)
	for i := range entry {
		entry[i] = -1
	}
	next := make([]uint64, len(bs))
	credit := make([]uint64, len(bs))
	filled := 0
	for {
		for i, b := range bs {
			credit[i] += uint64(b.Weight)
			if credit[i] < maxW {
				continue
			}
			credit[i] -= maxW
			c := (offset[i] + next[i]*skip[i]) % M
			for entry[c] >= 0 {
				next[i]++
				c = (offset[i] + next[i]*skip[i]) % M
			}
			entry[c] = i
			next[i]++
			if filled++; filled == size {
				out := make([]uint32, size)
				for s, i := range entry {
					out[s] = bs[i].ID
				}
				return out
			}
		}
	}
}

func TestMaglevMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	for _, size := range []int{7, 251, 4099, DefaultMaglevSize} {
		for trial := range 12 {
			n := 1 + r.IntN(min(size, 40))
			var key HashKey
			for i := range key {
				key[i] = byte(r.Uint32())
			}
			pool := equalPool(n)
			for i := range pool {
				switch trial % 3 {
				case 0: // equal weights: the paper's loop
				case 1:
					pool[i].Weight = 1 + r.Uint32N(10)
				case 2: // skewed, with drained members and IPv6
					pool[i].Weight = []uint32{0, 1, 2, 1000, math.MaxUint32}[r.IntN(5)]
					if i%2 == 1 {
						pool[i].Addr = netip.AddrFrom16([16]byte{0x20, 0x01, 0x0d, 0xb8, 14: byte(i >> 8), 15: byte(i)})
					}
				}
			}
			want := referenceMaglev(key, size, pool)
			if got := mustMaglev(t, key, size, pool).Slots(); !slices.Equal(got, want) {
				t.Fatalf("size %d, pool %v: table differs from the reference", size, pool)
			}
			// Both turn orders, whichever populate would choose.
			ms := canonical(pool)
			for name, fill := range map[string]func(*builder, []member, uint64){
				"credit": (*builder).turnsByCredit,
				"heap":   (*builder).turnsByHeap,
			} {
				b, maxW, _ := newBuilder(&key, size, ms)
				fill(b, ms, maxW)
				if !slices.Equal(b.table, want) {
					t.Fatalf("size %d, pool %v: %s table differs from the reference", size, pool, name)
				}
			}
		}
	}
}

func TestNewMaglevErrors(t *testing.T) {
	v4 := netip.MustParseAddr("192.0.2.1")
	tests := []struct {
		name string
		size int
		pool []Backend
		want error
	}{
		{"size 1", 1, equalPool(1), ErrSize},
		{"size 4", 4, equalPool(1), ErrSize},
		{"size 65536", 65536, equalPool(3), ErrSize},
		{"size 65535", 65535, equalPool(3), ErrSize},
		{"negative size", -7, equalPool(3), ErrSize},
		{"too big", 16777259, equalPool(3), ErrSize}, // prime, above MaxMaglevSize
		{"fewer slots than backends", 5, equalPool(6), ErrSize},
		{"zero address", 7, []Backend{{ID: 1, Port: 80, Weight: 1}}, ErrInvalidAddr},
		{"duplicate addr:port", 7, []Backend{
			{ID: 1, Addr: v4, Port: 80, Weight: 1},
			{ID: 2, Addr: v4, Port: 80, Weight: 2},
		}, ErrDuplicate},
		{"duplicate drained", 7, []Backend{
			{ID: 1, Addr: v4, Port: 80, Weight: 1},
			{ID: 2, Addr: v4, Port: 80, Weight: 0},
		}, ErrDuplicate},
		{"duplicate v4-mapped", 7, []Backend{
			{ID: 1, Addr: v4, Port: 80, Weight: 1},
			{ID: 2, Addr: netip.AddrFrom16(v4.As16()), Port: 80, Weight: 1},
		}, ErrDuplicate},
		{"duplicate id", 7, []Backend{
			{ID: 1, Addr: v4, Port: 80, Weight: 1},
			{ID: 1, Addr: v4, Port: 81, Weight: 1},
		}, ErrDuplicate},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := NewMaglev(testKey, tt.size, tt.pool)
			if !errors.Is(err, tt.want) {
				t.Fatalf("NewMaglev = %v, %v; want error %v", m, err, tt.want)
			}
			t.Log(err)
		})
	}
	t.Run("every problem reported", func(t *testing.T) {
		_, err := NewMaglev(testKey, 8, []Backend{{ID: 1}, {ID: 2, Addr: v4}, {ID: 3, Addr: v4}})
		for _, want := range []error{ErrSize, ErrInvalidAddr, ErrDuplicate} {
			if !errors.Is(err, want) {
				t.Errorf("error %q does not report %v", err, want)
			}
		}
	})
	t.Run("same port different family is fine", func(t *testing.T) {
		pool := []Backend{
			{ID: 1, Addr: v4, Port: 80, Weight: 1},
			{ID: 2, Addr: netip.MustParseAddr("2001:db8::1"), Port: 80, Weight: 1},
			{ID: 3, Addr: v4, Port: 81, Weight: 1},
		}
		if _, err := NewMaglev(testKey, 7, pool); err != nil {
			t.Fatal(err)
		}
	})
}

func TestMaglevEmpty(t *testing.T) {
	tests := []struct {
		name string
		m    *Maglev
		size int
	}{
		{"nil pool", mustMaglev(t, testKey, 7, nil), 7},
		{"all drained", mustMaglev(t, testKey, 0, weightedPool(0, 0, 0)), DefaultMaglevSize},
		{"zero Maglev", &Maglev{}, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, h := range []uint64{0, 1, math.MaxUint64} {
				if id, ok := tt.m.Pick(h); ok {
					t.Errorf("Pick(%#x) = %d, true on an empty table", h, id)
				}
			}
			if s := tt.m.Slots(); s != nil {
				t.Errorf("Slots() = %d slots, want nil", len(s))
			}
			if got := tt.m.Size(); got != tt.size {
				t.Errorf("Size() = %d, want %d", got, tt.size)
			}
			if got := tt.m.Scheduler(); got == nil {
				t.Error("Scheduler() = nil")
			} else if _, ok := got.Pick(7, new(uint32)); ok {
				t.Error("Scheduler().Pick ok on an empty table")
			}
		})
	}
}

func TestMaglevPickSlot(t *testing.T) {
	m := mustMaglev(t, testKey, 0, equalPool(10))
	slots := m.Slots()
	for _, h := range append(flowHashes(&testKey, 1000, 9), 0, 1, math.MaxUint64, 1<<63) {
		i, _ := bits.Mul64(h, uint64(len(slots)))
		if id, ok := m.Pick(h); !ok || id != slots[i] {
			t.Fatalf("Pick(%#x) = %d, %v; slot %d holds %d", h, id, ok, i, slots[i])
		}
	}
	if id, _ := m.Pick(0); id != slots[0] {
		t.Errorf("Pick(0) = %d, want slot 0 (%d)", id, slots[0])
	}
	if id, _ := m.Pick(math.MaxUint64); id != slots[len(slots)-1] {
		t.Errorf("Pick(max) = %d, want last slot (%d)", id, slots[len(slots)-1])
	}
}

// TestMaglevCanonical checks that the table does not depend on pool order,
// on drained members, on the weights' common factor, or on the spelling of
// an IPv4 address (plain or v4-mapped, with or without zone).
func TestMaglevCanonical(t *testing.T) {
	base := weightedPool(1, 2, 3, 4, 5, 6, 7, 8)
	want := mustMaglev(t, testKey, 4099, base).Slots()
	r := rand.New(rand.NewPCG(5, 6))

	shuffled := slices.Clone(base)
	r.Shuffle(len(shuffled), func(i, j int) { shuffled[i], shuffled[j] = shuffled[j], shuffled[i] })
	scaled := slices.Clone(base)
	for i := range scaled {
		scaled[i].Weight *= 1000
	}
	drained := append(slices.Clone(base), Backend{ID: 99, Addr: addr4(99), Port: 80})
	slices.Reverse(drained)
	mapped := slices.Clone(base)
	for i := range mapped {
		mapped[i].Addr = netip.AddrFrom16(mapped[i].Addr.As16())
	}
	zoned := slices.Clone(base)
	zoned[0].Addr = netip.MustParseAddr("::ffff:10.0.0.0%eth0")

	tests := []struct {
		name string
		pool []Backend
	}{
		{"shuffled", shuffled},
		{"weights x1000", scaled},
		{"plus a drained backend", drained},
		{"v4-mapped", mapped},
		{"zone", zoned},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mustMaglev(t, testKey, 4099, tt.pool).Slots(); !slices.Equal(got, want) {
				t.Error("table differs from the base pool's")
			}
		})
	}
	t.Run("other key", func(t *testing.T) {
		k := testKey
		k[0] ^= 1
		if got := mustMaglev(t, k, 4099, base).Slots(); slices.Equal(got, want) {
			t.Error("changing the key left the table unchanged")
		}
	})
	t.Run("Backends in canonical order", func(t *testing.T) {
		got := mustMaglev(t, testKey, 4099, append(shuffled, Backend{ID: 50, Addr: netip.MustParseAddr("2001:db8::1"), Port: 80, Weight: 1},
			Backend{ID: 51, Addr: netip.MustParseAddr("::1"), Port: 80, Weight: 1})).Backends()
		var ids []uint32
		for _, b := range got {
			ids = append(ids, b.ID)
		}
		// ::1 < ::ffff:10.0.0.x < 2001:db8::1 in 16-byte order.
		if want := []uint32{51, 0, 1, 2, 3, 4, 5, 6, 7, 50}; !slices.Equal(ids, want) {
			t.Errorf("Backends() IDs = %v, want %v", ids, want)
		}
		if got[1] != base[0] {
			t.Errorf("Backends()[1] = %v, want %v", got[1], base[0])
		}
	})
}

// TestMaglevWeightZero: a drained backend owns no slot, and the table is
// the one built without it.
func TestMaglevWeightZero(t *testing.T) {
	pool := equalPool(5)
	pool[2].Weight = 0
	m := mustMaglev(t, testKey, 0, pool)
	if c := countSlots(m.Slots()); c[2] != 0 {
		t.Errorf("drained backend 2 owns %d slots", c[2])
	}
	if !slices.Equal(m.Slots(), mustMaglev(t, testKey, 0, without(pool, 2)).Slots()) {
		t.Error("table with a drained backend differs from the table without it")
	}
}

func TestMaglevDistribution(t *testing.T) {
	tests := []struct {
		name string
		ws   []uint32
	}{
		{"1,2,3,4", []uint32{1, 2, 3, 4}},
		{"equal 10", []uint32{1, 1, 1, 1, 1, 1, 1, 1, 1, 1}},
		{"1,10,100", []uint32{1, 10, 100}},
		{"7,0,13", []uint32{7, 0, 13}},
	}
	hashes := flowHashes(&testKey, 1_000_000, 7)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := mustMaglev(t, testKey, DefaultMaglevSize, weightedPool(tt.ws...))
			var sum, n float64
			for _, w := range tt.ws {
				sum += float64(w)
				if w > 0 {
					n++
				}
			}
			slots := countSlots(m.Slots())
			flows := make(map[uint32]int)
			for _, h := range hashes {
				id, _ := m.Pick(h)
				flows[id]++
			}
			for id, w := range tt.ws {
				share := float64(w) / sum
				// Slot counts: within 1 + N·w/Σw of M·w/Σw (see NewMaglev).
				wantSlots := share * float64(m.Size())
				if d := math.Abs(float64(slots[uint32(id)]) - wantSlots); d > 1+n*share {
					t.Errorf("backend %d (weight %d): %d slots, want %.1f ± %.1f", id, w, slots[uint32(id)], wantSlots, 1+n*share)
				}
				// Flows: within 2% (relative) of the weight share.
				got := float64(flows[uint32(id)]) / float64(len(hashes))
				t.Logf("backend %d weight %d: %d slots, %.4f of flows (want %.4f)", id, w, slots[uint32(id)], got, share)
				if math.Abs(got-share) > 0.02*share {
					t.Errorf("backend %d (weight %d): %.4f of flows, want %.4f ± 2%%", id, w, got, share)
				}
			}
		})
	}
}

// remap compares the tables before and after a pool change: the fraction of
// slots and of flows whose backend changed, and among flows whose old
// backend is in both pools, the fraction that moved anyway.
func remap(before, after *Maglev, hashes []uint64, gone, added uint32) (slots, flows, strays float64) {
	a, b := before.Slots(), after.Slots()
	changed := 0
	for i := range a {
		if a[i] != b[i] {
			changed++
		}
	}
	moved, kept, keptMoved := 0, 0, 0
	for _, h := range hashes {
		x, _ := before.Pick(h)
		y, _ := after.Pick(h)
		if x != y {
			moved++
		}
		if x != gone && y != added {
			kept++
			if x != y {
				keptMoved++
			}
		}
	}
	return float64(changed) / float64(len(a)), float64(moved) / float64(len(hashes)), float64(keptMoved) / float64(kept)
}

// TestMaglevRemap measures how much of the table and of 1M flows change
// backend when one of N equal backends goes away or one joins. The ideal
// is 1/N (1/(N+1) when adding) with no flow of a surviving backend moving;
// Maglev gets close when M >> N and drifts away as N/M grows. The bounds are
// the figures measured over 8 keys (doc.go) plus a little headroom; with the
// fixed key, pool and flows here the test is deterministic.
func TestMaglevRemap(t *testing.T) {
	hashes := flowHashes(&testKey, 1_000_000, 11)
	const none = math.MaxUint32
	tests := []struct {
		n         int
		size      int
		maxRatio  float64 // changed fraction / ideal
		maxStrays float64 // surviving backends' flows that moved
	}{
		{3, DefaultMaglevSize, 1.05, 0.005},
		{10, DefaultMaglevSize, 1.1, 0.005},
		{100, DefaultMaglevSize, 1.7, 0.01},
		{100, 655373, 1.2, 0.005},
		{1000, DefaultMaglevSize, 7.5, 0.01},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("N=%d/M=%d", tt.n, tt.size), func(t *testing.T) {
			pool := equalPool(tt.n + 1)
			small := mustMaglev(t, testKey, tt.size, pool[:tt.n])
			for _, c := range []struct {
				what          string
				before, after *Maglev
				ideal         float64
				gone, added   uint32
			}{
				{"remove", small, mustMaglev(t, testKey, tt.size, without(pool[:tt.n], tt.n/2)), 1 / float64(tt.n), uint32(tt.n / 2), none},
				{"add", small, mustMaglev(t, testKey, tt.size, pool), 1 / float64(tt.n+1), none, uint32(tt.n)},
			} {
				slots, flows, strays := remap(c.before, c.after, hashes, c.gone, c.added)
				t.Logf("N=%d M=%d %s one: %.4f of slots, %.4f of flows changed (ideal %.4f, ratio %.3f); %.4f of the others' flows moved",
					tt.n, tt.size, c.what, slots, flows, c.ideal, slots/c.ideal, strays)
				if slots < c.ideal*0.99 || slots > c.ideal*tt.maxRatio || flows > c.ideal*tt.maxRatio {
					t.Errorf("%s: %.4f of slots and %.4f of flows changed, want between %.4f and %.4f",
						c.what, slots, flows, c.ideal, c.ideal*tt.maxRatio)
				}
				if strays > tt.maxStrays {
					t.Errorf("%s: %.4f of surviving backends' flows moved, want <= %.3f", c.what, strays, tt.maxStrays)
				}
			}
		})
	}
}

// TestMaglevGolden pins the start of the table and the slot counts for a
// fixed key and pool, and the backends of the golden flows of
// TestFlowHashGolden. If this fails, two builds of culvert would send the
// same flow to different backends: that breaks HA failover and ECMP
// scale-out (see doc.go) and needs a release note, not a new golden value.
func TestMaglevGolden(t *testing.T) {
	pool := []Backend{
		{ID: 0, Addr: netip.MustParseAddr("10.1.0.1"), Port: 8080, Weight: 1},
		{ID: 1, Addr: netip.MustParseAddr("10.1.0.2"), Port: 8080, Weight: 2},
		{ID: 2, Addr: netip.MustParseAddr("10.1.0.3"), Port: 8080, Weight: 1},
		{ID: 3, Addr: netip.MustParseAddr("2001:db8::10"), Port: 443, Weight: 3},
		{ID: 4, Addr: netip.MustParseAddr("10.1.0.4"), Port: 8080, Weight: 0},
	}
	m := mustMaglev(t, testKey, DefaultMaglevSize, pool)
	slots := m.Slots()
	if got, want := slots[:32], []uint32{
		2, 3, 1, 3, 1, 1, 0, 2, 2, 1, 3, 3, 1, 1, 3, 2,
		1, 1, 3, 3, 1, 1, 0, 0, 1, 0, 2, 3, 1, 3, 0, 3,
	}; !slices.Equal(got, want) {
		t.Errorf("first slots = %v, want %v", got, want)
	}
	c := countSlots(slots)
	if got, want := []int{c[0], c[1], c[2], c[3], c[4]}, []int{9362, 18725, 9362, 28088, 0}; !slices.Equal(got, want) {
		t.Errorf("slot counts = %v, want %v", got, want)
	}
	small := mustMaglev(t, testKey, 7, pool)
	if got, want := small.Slots(), []uint32{0, 3, 1, 1, 3, 3, 2}; !slices.Equal(got, want) {
		t.Errorf("size-7 table = %v, want %v", got, want)
	}
	flows := []uint64{
		FlowHash4(&testKey, [4]byte{198, 51, 100, 7}, [4]byte{192, 0, 2, 1}, 40000, 443, 6),
		FlowHash4(&testKey, [4]byte{198, 51, 100, 7}, [4]byte{192, 0, 2, 1}, 40001, 443, 6),
		FlowHash4(&testKey, [4]byte{198, 51, 100, 8}, [4]byte{192, 0, 2, 1}, 40000, 443, 6),
		FlowHash4(&testKey, [4]byte{203, 0, 113, 9}, [4]byte{192, 0, 2, 1}, 1024, 80, 17),
	}
	var got []uint32
	for _, h := range flows {
		id, _ := m.Pick(h)
		got = append(got, id)
	}
	if want := []uint32{3, 0, 3, 1}; !slices.Equal(got, want) {
		t.Errorf("golden flows picked %v, want %v", got, want)
	}
}
