package sched

import (
	"math/rand/v2"
	"net/netip"
)

// testKey is the SipHash reference key 00 01 .. 0f.
var testKey = HashKey{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}

// addr4 returns 10.x.y.z for backend number i (IDs and addresses line up).
func addr4(i int) netip.Addr {
	return netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
}

// equalPool returns n backends of weight 1 with IDs 0..n-1 at 10.0.x.y:80.
func equalPool(n int) []Backend {
	p := make([]Backend, n)
	for i := range p {
		p[i] = Backend{ID: uint32(i), Addr: addr4(i), Port: 80, Weight: 1}
	}
	return p
}

// weightedPool returns one backend per weight, IDs 0..len-1.
func weightedPool(ws ...uint32) []Backend {
	p := equalPool(len(ws))
	for i, w := range ws {
		p[i].Weight = w
	}
	return p
}

// without returns a copy of pool with backend index i removed.
func without(pool []Backend, i int) []Backend {
	out := append([]Backend(nil), pool[:i]...)
	return append(out, pool[i+1:]...)
}

// flowHashes returns n hashes of random IPv4 TCP flows (fixed seed).
func flowHashes(key *HashKey, n int, seed uint64) []uint64 {
	r := rand.New(rand.NewPCG(seed, 0x5eed))
	hs := make([]uint64, n)
	for i := range hs {
		var src [4]byte
		v := r.Uint32()
		src = [4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}
		hs[i] = FlowHash4(key, src, [4]byte{192, 0, 2, 1}, uint16(r.Uint32()), 443, 6)
	}
	return hs
}

// countSlots returns the number of slots per backend ID.
func countSlots(slots []uint32) map[uint32]int {
	c := make(map[uint32]int)
	for _, id := range slots {
		c[id]++
	}
	return c
}

func mustMaglev(t interface {
	Helper()
	Fatalf(string, ...any)
}, key HashKey, size int, pool []Backend) *Maglev {
	t.Helper()
	m, err := NewMaglev(key, size, pool)
	if err != nil {
		t.Fatalf("NewMaglev: %v", err)
	}
	return m
}
