package sched

import (
	"net/netip"
	"slices"
	"testing"
)

func FuzzParseKind(f *testing.F) {
	for _, s := range []string{"maglev", "wrr", "lc", "", "LC", "wlc"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		k, err := ParseKind(s)
		if err != nil {
			return
		}
		if k.String() != s {
			t.Errorf("ParseKind(%q) = %v, which prints as %q", s, k, k.String())
		}
	})
}

// FuzzFlowHash checks the specialised hashes against SipHash-2-4 of the
// documented byte strings.
func FuzzFlowHash(f *testing.F) {
	f.Add(testKey[:], []byte{198, 51, 100, 7, 192, 0, 2, 1}, uint16(40000), uint16(443), uint8(6))
	f.Add(make([]byte, 16), make([]byte, 32), uint16(0), uint16(0), uint8(0))
	f.Fuzz(func(t *testing.T, key, addrs []byte, sport, dport uint16, proto uint8) {
		var k HashKey
		copy(k[:], key)
		var a [32]byte
		copy(a[:], addrs)
		s4, d4 := [4]byte(a[0:4]), [4]byte(a[4:8])
		if got, want := FlowHash4(&k, s4, d4, sport, dport, proto), sipHash24(&k, flow4Bytes(s4, d4, sport, dport, proto)); got != want {
			t.Errorf("FlowHash4 = %#x, reference %#x", got, want)
		}
		s6, d6 := [16]byte(a[0:16]), [16]byte(a[16:32])
		if got, want := FlowHash6(&k, s6, d6, sport, dport, proto), sipHash24(&k, flow6Bytes(s6, d6, sport, dport, proto)); got != want {
			t.Errorf("FlowHash6 = %#x, reference %#x", got, want)
		}
	})
}

// FuzzNewMaglev builds tables from arbitrary pools: 7 bytes per backend
// (address byte, port byte, weight byte, ID byte, family, two spare). Either
// NewMaglev reports an error, or every slot holds a backend with weight,
// each owns its share of slots to within 1 + N·w/Σw, and the result matches
// the reference loop.
func FuzzNewMaglev(f *testing.F) {
	f.Add(uint16(7), []byte{1, 80, 1, 0, 0, 0, 0, 2, 80, 2, 1, 0, 0, 0})
	f.Add(uint16(251), []byte{1, 80, 255, 0, 1, 0, 0, 1, 80, 1, 1, 0, 0, 0, 3, 81, 0, 2, 0, 0, 0})
	f.Add(uint16(8), []byte{1, 1, 1, 1, 1, 1, 1})
	f.Fuzz(func(t *testing.T, size uint16, data []byte) {
		var pool []Backend
		for ; len(data) >= 7 && len(pool) < 64; data = data[7:] {
			b := Backend{ID: uint32(data[3]), Port: uint16(data[1]), Weight: uint32(data[2])}
			switch data[4] % 3 {
			case 0:
				b.Addr = netip.AddrFrom4([4]byte{10, 0, 0, data[0]})
			case 1:
				b.Addr = netip.AddrFrom16([16]byte{0x20, 0x01, 15: data[0]})
			}
			if data[5]&1 == 1 {
				b.Weight <<= 24
			}
			pool = append(pool, b)
		}
		m, err := NewMaglev(testKey, int(size), pool)
		if err != nil {
			return
		}
		weights := make(map[uint32]uint32)
		var sum float64
		for _, b := range pool {
			if b.Weight > 0 {
				weights[b.ID] = b.Weight
				sum += float64(b.Weight)
			}
		}
		slots := m.Slots()
		if len(weights) == 0 {
			if slots != nil {
				t.Fatalf("all-drained pool built %d slots", len(slots))
			}
			return
		}
		counts := countSlots(slots)
		n := float64(len(weights))
		for id := range counts {
			if _, ok := weights[id]; !ok {
				t.Fatalf("slot holds id %d, not a backend with weight", id)
			}
		}
		for id, w := range weights {
			c := counts[id]
			share := float64(w) / sum
			if d := float64(c) - share*float64(len(slots)); d > 1+n*share || d < -1-n*share {
				t.Fatalf("backend %d (weight %d) owns %d of %d slots, want %.1f", id, w, c, len(slots), share*float64(len(slots)))
			}
		}
		if !slices.Equal(slots, referenceMaglev(testKey, m.Size(), pool)) {
			t.Fatal("table differs from the reference")
		}
	})
}
