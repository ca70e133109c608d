package sched

import (
	"fmt"
	"math/rand/v2"
	"sync/atomic"
	"testing"
)

var benchSink uint64

func BenchmarkFlowHash4(b *testing.B) {
	b.ReportAllocs()
	src, dst := [4]byte{198, 51, 100, 7}, [4]byte{192, 0, 2, 1}
	var h uint64
	for i := 0; b.Loop(); i++ {
		h += FlowHash4(&testKey, src, dst, uint16(i), 443, 6)
	}
	benchSink = h
}

func BenchmarkFlowHash6(b *testing.B) {
	b.ReportAllocs()
	src, dst := [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 7}, [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}
	var h uint64
	for i := 0; b.Loop(); i++ {
		h += FlowHash6(&testKey, src, dst, uint16(i), 443, 6)
	}
	benchSink = h
}

// BenchmarkMaglevPick looks up spread-out hashes, so the 256 KiB table is
// touched all over as in real traffic; "hash+pick" adds FlowHash4.
func BenchmarkMaglevPick(b *testing.B) {
	for _, n := range []int{10, 1000} {
		m := mustMaglev(b, testKey, DefaultMaglevSize, equalPool(n))
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			b.ReportAllocs()
			var h, sum uint64
			for b.Loop() {
				h += 0x9e3779b97f4a7c15
				id, _ := m.Pick(h)
				sum += uint64(id)
			}
			benchSink = sum
		})
	}
	m := mustMaglev(b, testKey, DefaultMaglevSize, equalPool(100))
	b.Run("hash+pick", func(b *testing.B) {
		b.ReportAllocs()
		src, dst := [4]byte{198, 51, 100, 7}, [4]byte{192, 0, 2, 1}
		var sum uint64
		for i := 0; b.Loop(); i++ {
			id, _ := m.Pick(FlowHash4(&testKey, src, dst, uint16(i), 443, 6))
			sum += uint64(id)
		}
		benchSink = sum
	})
}

func BenchmarkNewMaglev(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	random := equalPool(1000)
	for i := range random {
		random[i].Weight = 1 + r.Uint32N(100)
	}
	skewed := equalPool(1000)
	skewed[0].Weight = 1_000_000
	cases := []struct {
		name string
		size int
		pool []Backend
	}{
		{"backends=10", DefaultMaglevSize, equalPool(10)},
		{"backends=100", DefaultMaglevSize, equalPool(100)},
		{"backends=1000", DefaultMaglevSize, equalPool(1000)},
		{"backends=1000/weights=1..100", DefaultMaglevSize, random},
		{"backends=1000/skewed", DefaultMaglevSize, skewed},
		{"backends=1000/size=655373", 655373, equalPool(1000)},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := NewMaglev(testKey, c.size, c.pool); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func BenchmarkWRRPick(b *testing.B) {
	b.ReportAllocs()
	w := NewWRR(weightedPool(1, 2, 3, 4, 5, 6, 7, 8, 9, 10))
	var c uint32
	var sum uint64
	for b.Loop() {
		id, _ := w.Pick(&c)
		sum += uint64(id)
	}
	benchSink = sum
}

func BenchmarkNewWRR(b *testing.B) {
	r := rand.New(rand.NewPCG(1, 1))
	pool := equalPool(1000)
	for i := range pool {
		pool[i].Weight = 1 + r.Uint32N(1000)
	}
	b.ReportAllocs()
	for b.Loop() {
		NewWRR(pool)
	}
}

// BenchmarkLeastConnPick scans pools with uneven loads.
func BenchmarkLeastConnPick(b *testing.B) {
	for _, n := range []int{10, 100} {
		b.Run(fmt.Sprintf("backends=%d", n), func(b *testing.B) {
			a := NewActive(n)
			for id := range n {
				a.c[id].n.Store(int64(1000 + id*7%13))
			}
			l := NewLeastConn(equalPool(n), a)
			b.ReportAllocs()
			var c uint32
			var sum uint64
			for b.Loop() {
				id, _ := l.Pick(&c)
				sum += uint64(id)
			}
			benchSink = sum
		})
	}
}

// packedActive is Active without the padding, to measure what the padding
// buys (counterStride in active.go).
type packedActive struct{ c []atomic.Int64 }

func (a *packedActive) Inc(id uint32) { a.c[id].Add(1) }
func (a *packedActive) Dec(id uint32) { a.c[id].Add(-1) }

// BenchmarkActiveIncParallel has each goroutine (GOMAXPROCS of them) count
// flows on its own backend ID, neighbouring IDs 0, 1, 2, ...
func BenchmarkActiveIncParallel(b *testing.B) {
	type counter interface {
		Inc(uint32)
		Dec(uint32)
	}
	for _, c := range []struct {
		name string
		a    counter
	}{
		{"padded", NewActive(64)},
		{"packed", &packedActive{c: make([]atomic.Int64, 64)}},
	} {
		b.Run(c.name, func(b *testing.B) {
			b.ReportAllocs()
			var next atomic.Uint32
			b.RunParallel(func(pb *testing.PB) {
				id := next.Add(1) - 1
				for pb.Next() {
					c.a.Inc(id)
					c.a.Dec(id)
				}
			})
		})
	}
}
