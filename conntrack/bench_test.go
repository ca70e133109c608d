package conntrack

import (
	"bufio"
	"math/rand/v2"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"testing"
	"time"
)

// Benchmark sizes (live flows). The 10M cases take seconds to build and
// about 1 GiB; -short skips them.
var benchSizes = []struct {
	name string
	n    int
}{
	{"10k", 10_000},
	{"1M", 1_000_000},
	{"10M", 10_000_000},
}

// cpuMeter adds a cpu-ns/op metric: the benchmark goroutine's thread CPU
// time per op, which unlike ns/op does not count time other processes on a
// loaded machine held the CPU. Call start and stop around the timed work.
type cpuMeter struct {
	b     *testing.B
	t0    time.Duration
	total time.Duration
	ok    bool
}

func newCPUMeter(b *testing.B) *cpuMeter {
	runtime.LockOSThread()
	b.Cleanup(runtime.UnlockOSThread)
	return &cpuMeter{b: b}
}

func (m *cpuMeter) start() { m.t0, m.ok = threadCPU() }

func (m *cpuMeter) stop() {
	if t, ok := threadCPU(); ok && m.ok {
		m.total += t - m.t0
	}
}

func (m *cpuMeter) report() {
	if m.ok && m.b.N > 0 {
		m.b.ReportMetric(float64(m.total.Nanoseconds())/float64(m.b.N), "cpu-ns/op")
	}
}

func skipHeavy(b *testing.B, n int) {
	if testing.Short() && n > 1_000_000 {
		b.Skip("-short: skipping the 10M case")
	}
}

// fullTable4 returns a table of capacity n holding n full-NAT flows (2n
// index keys: the index at its worst load). Tables are cached across
// sub-benchmarks.
var fullTables = map[Config]*Table[Key4]{}

func fullTable4(b *testing.B, n int) *Table[Key4] {
	return fullTable4Config(b, Config{MaxFlows: n})
}

func fullTable4Config(b *testing.B, cfg Config) *Table[Key4] {
	if tb, ok := fullTables[cfg]; ok {
		return tb
	}
	clear(fullTables) // keep one big table at a time
	runtime.GC()
	n := cfg.MaxFlows
	tb := newTable[Key4](b, cfg)
	r := tb.NewReader()
	r.Begin()
	for i := range uint32(n) {
		f := natFlow4(i, 6)
		if _, err := tb.Insert(&f, StateEstablished, 0); err != nil {
			b.Fatal(err)
		}
	}
	r.End()
	r.Close()
	fullTables[cfg] = tb
	return tb
}

// randomKeys returns a ring of lookup keys of random live flows, half
// original and half reply direction. The ring is large enough (up to 4Mi
// keys) that the flows it touches do not fit in the caches: each lookup
// of a big table really misses.
func randomKeys(n int) []Key4 {
	count := 1 << 14
	for count < n && count < 1<<22 {
		count *= 2
	}
	rng := rand.New(rand.NewPCG(uint64(n), 1))
	keys := make([]Key4, count)
	for i := range keys {
		id := rng.Uint32N(uint32(n))
		if rng.IntN(2) == 0 {
			keys[i] = key4(id, 6)
		} else {
			keys[i] = reply4(id, 6)
		}
	}
	return keys
}

// BenchmarkLookupBatch: ns/op is per packet (key), looked up in batches of
// 64 against a full table of N flows, with and without prefetching.
func BenchmarkLookupBatch(b *testing.B) {
	for _, sz := range benchSizes {
		for _, pf := range []bool{true, false} {
			name := sz.name + "/prefetch"
			if !pf {
				name = sz.name + "/noprefetch"
			}
			b.Run(name, func(b *testing.B) {
				skipHeavy(b, sz.n)
				tb := fullTable4(b, sz.n)
				keys := randomKeys(sz.n)
				out := make([]Ref[Key4], MaxBatch)
				r := tb.NewReader()
				defer r.Close()
				cpu := newCPUMeter(b)
				b.ReportAllocs()
				b.ResetTimer()
				cpu.start()
				j := 0
				for i := 0; i < b.N; i += MaxBatch {
					r.Begin()
					tb.lookupBatch(keys[j:j+MaxBatch], out, pf)
					r.End()
					if out[0].E == nil {
						b.Fatal("miss")
					}
					j = (j + MaxBatch) & (len(keys) - 1)
				}
				cpu.stop()
				cpu.report()
			})
		}
	}
}

// BenchmarkLookupBatchHugePages is BenchmarkLookupBatch (with prefetch)
// with Config.HugePages. Run it in a process of its own: memory freed by
// other benchmarks keeps its madvise when reused.
func BenchmarkLookupBatchHugePages(b *testing.B) {
	for _, sz := range benchSizes[1:] {
		b.Run(sz.name, func(b *testing.B) {
			skipHeavy(b, sz.n)
			tb := fullTable4Config(b, Config{MaxFlows: sz.n, HugePages: true})
			keys := randomKeys(sz.n)
			out := make([]Ref[Key4], MaxBatch)
			r := tb.NewReader()
			defer r.Close()
			cpu := newCPUMeter(b)
			b.ReportAllocs()
			b.ResetTimer()
			cpu.start()
			j := 0
			for i := 0; i < b.N; i += MaxBatch {
				r.Begin()
				tb.LookupBatch(keys[j:j+MaxBatch], out)
				r.End()
				j = (j + MaxBatch) & (len(keys) - 1)
			}
			cpu.stop()
			cpu.report()
		})
	}
}

// BenchmarkLookup is the one-key lookup, for comparison with the batch.
func BenchmarkLookup(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			skipHeavy(b, sz.n)
			tb := fullTable4(b, sz.n)
			keys := randomKeys(sz.n)
			r := tb.NewReader()
			defer r.Close()
			cpu := newCPUMeter(b)
			b.ReportAllocs()
			b.ResetTimer()
			cpu.start()
			r.Begin()
			for i := 0; i < b.N; i++ {
				if tb.Lookup(&keys[i&(len(keys)-1)]).E == nil {
					b.Fatal("miss")
				}
				if i&63 == 63 {
					r.End()
					r.Begin()
				}
			}
			r.End()
			cpu.stop()
			cpu.report()
		})
	}
}

// BenchmarkLookupTrack is the dataplane's per-packet conntrack work for an
// established flow: batch lookup plus Track, per packet.
func BenchmarkLookupTrack(b *testing.B) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			skipHeavy(b, sz.n)
			tb := fullTable4(b, sz.n)
			keys := randomKeys(sz.n)
			out := make([]Ref[Key4], MaxBatch)
			r := tb.NewReader()
			defer r.Close()
			cpu := newCPUMeter(b)
			b.ReportAllocs()
			b.ResetTimer()
			cpu.start()
			j := 0
			now := Time(0)
			for i := 0; i < b.N; i += MaxBatch {
				now += 1000 // a 1 µs batch
				r.Begin()
				tb.LookupBatch(keys[j:j+MaxBatch], out)
				for _, ref := range out {
					tb.Track(ref.E, ref.Dir, FlagACK, now)
				}
				r.End()
				j = (j + MaxBatch) & (len(keys) - 1)
			}
			cpu.stop()
			cpu.report()
		})
	}
}

// BenchmarkInsert measures Insert into a table that holds N live flows, in
// steady state: flows are inserted in chunks of N/16 one (fake) second
// apart with a 16 s timeout, and between chunks an untimed Sweep expires
// the chunk inserted 16 s earlier. Capacity is N plus two chunks (expired
// entries are reused one Sweep later). Both home buckets of each new flow
// are cold: the pessimistic case.
func BenchmarkInsert(b *testing.B) { benchInsert(b, false) }

// BenchmarkNewFlowBatch is the dataplane's new-flow path per flow, in the
// same steady state: LookupBatch of 64 new Orig keys (all miss), Prefetch
// of their Reply keys, then 64 Inserts.
func BenchmarkNewFlowBatch(b *testing.B) { benchInsert(b, true) }

func benchInsert(b *testing.B, batch bool) {
	for _, sz := range benchSizes {
		b.Run(sz.name, func(b *testing.B) {
			skipHeavy(b, sz.n)
			clear(fullTables)
			runtime.GC()
			const gens = 16
			chunk := sz.n / gens
			chunk -= chunk % MaxBatch
			tb := newTable[Key4](b, Config{MaxFlows: sz.n + 2*chunk, Timeouts: Timeouts{UDP: gens * time.Second}})
			r := tb.NewReader()
			next := uint32(0)
			var flows [MaxBatch]Flow[Key4]
			var keys [MaxBatch]Key4
			var out [MaxBatch]Ref[Key4]
			fill := func(now Time, count int) {
				for done := 0; done < count; done += MaxBatch {
					n := min(MaxBatch, count-done)
					r.Begin()
					for i := range n {
						flows[i] = natFlow4(next, 17)
						next++
					}
					if batch {
						for i := range n {
							keys[i] = flows[i].Orig
						}
						tb.LookupBatch(keys[:n], out[:n])
						for i := range n {
							tb.Prefetch(&flows[i].Reply)
						}
					}
					for i := range n {
						if _, err := tb.Insert(&flows[i], StateUDP, now); err != nil {
							b.Fatalf("insert %d: %v (%+v)", next, err, tb.Stats())
						}
					}
					r.End()
				}
			}
			sec := Time(0)
			for range gens {
				fill(sec, chunk)
				sec += Time(time.Second)
			}
			cpu := newCPUMeter(b)
			b.ReportAllocs()
			b.ResetTimer()
			for done := 0; done < b.N; {
				b.StopTimer()
				tb.Sweep(sec, tb.Capacity(), nil)
				if next > 1<<31 {
					b.Fatal("key space exhausted")
				}
				b.StartTimer()
				cpu.start()
				k := min(chunk, b.N-done)
				fill(sec, k)
				cpu.stop()
				done += k
				sec += Time(time.Second)
			}
			b.StopTimer()
			cpu.report()
			if live := tb.Stats().Live; live < (gens-1)*chunk || live > (gens+1)*chunk {
				b.Fatalf("not steady: %d live", live)
			}
		})
	}
}

// BenchmarkTrack is Track on a flow already in cache whose state and
// deadline second do not change: the common per-packet case.
func BenchmarkTrack(b *testing.B) {
	tb := newTable[Key4](b, Config{MaxFlows: 16})
	r := tb.NewReader()
	r.Begin()
	defer r.End()
	f := natFlow4(1, 6)
	e, _ := tb.Insert(&f, StateEstablished, 0)
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		tb.Track(e, DirOriginal, FlagACK, Time(i&1023))
	}
}

func BenchmarkHash(b *testing.B) {
	t4 := newTable[Key4](b, Config{MaxFlows: 16})
	t6 := newTable[Key6](b, Config{MaxFlows: 16})
	k4, k6 := key4(1, 6), key6(1, 6)
	b.Run("Key4", func(b *testing.B) {
		b.ReportAllocs()
		var s uint64
		for b.Loop() {
			s += t4.Hash(&k4)
			k4.SrcPort++
		}
		_ = s
	})
	b.Run("Key6", func(b *testing.B) {
		b.ReportAllocs()
		var s uint64
		for b.Loop() {
			s += t6.Hash(&k6)
			k6.SrcPort++
		}
		_ = s
	})
}

// vmRSS reads VmRSS from /proc/self/status, in bytes.
func vmRSS(b *testing.B) int64 {
	f, err := os.Open("/proc/self/status")
	if err != nil {
		b.Skip("no /proc/self/status")
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if rest, ok := strings.CutPrefix(sc.Text(), "VmRSS:"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), 10, 64)
			if err != nil {
				b.Fatal(err)
			}
			return kb << 10
		}
	}
	b.Fatal("no VmRSS")
	return 0
}

// BenchmarkMemory fills a fresh table of N full-NAT flows (two index keys
// each) to capacity and reports the growth of the process RSS. Run it on
// its own (-run '^$' -bench Memory) so other benchmarks' tables are not in
// the process.
func BenchmarkMemory(b *testing.B) {
	cases := []struct {
		name string
		n    int
		v6   bool
	}{
		{"v4/1M", 1_000_000, false},
		{"v4/10M", 10_000_000, false},
		{"v6/1M", 1_000_000, true},
	}
	for _, c := range cases {
		b.Run(c.name, func(b *testing.B) {
			skipHeavy(b, c.n)
			for b.Loop() {
				clear(fullTables)
				runtime.GC()
				debug.FreeOSMemory()
				before := vmRSS(b)
				var after int64
				if c.v6 {
					tb := newTable[Key6](b, Config{MaxFlows: c.n})
					r := tb.NewReader()
					r.Begin()
					for i := range uint32(c.n) {
						f := Flow[Key6]{Orig: key6(i, 6), Reply: reply6(i, 6), HasReply: true}
						if _, err := tb.Insert(&f, StateEstablished, 0); err != nil {
							b.Fatal(err)
						}
					}
					r.End()
					after = vmRSS(b)
					runtime.KeepAlive(tb)
				} else {
					tb := newTable[Key4](b, Config{MaxFlows: c.n})
					r := tb.NewReader()
					r.Begin()
					for i := range uint32(c.n) {
						f := natFlow4(i, 6)
						if _, err := tb.Insert(&f, StateEstablished, 0); err != nil {
							b.Fatal(err)
						}
					}
					r.End()
					after = vmRSS(b)
					runtime.KeepAlive(tb)
				}
				grown := after - before
				b.ReportMetric(float64(grown)/(1<<20), "RSS-MiB")
				b.ReportMetric(float64(grown)/float64(c.n), "bytes/flow")
				if !c.v6 && c.n == 10_000_000 && grown > 3<<29 {
					b.Errorf("10M IPv4 full-NAT flows use %d MiB, over the 1.5 GiB budget", grown>>20)
				}
			}
		})
	}
}
