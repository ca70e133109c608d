package nat_test

import (
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/nat"
)

// poolGet calls Get and fails the test unless it returns want.
func poolGet(t *testing.T, p *nat.PortPool, now int64, want uint16) {
	t.Helper()
	got, ok := p.Get(now)
	if !ok || got != want {
		t.Fatalf("Get(%d) = %d, %v; want %d, true", now, got, ok, want)
	}
}

// poolGetNone calls Get and fails the test unless it reports exhaustion.
func poolGetNone(t *testing.T, p *nat.PortPool, now int64) {
	t.Helper()
	if got, ok := p.Get(now); ok {
		t.Fatalf("Get(%d) = %d, true; want exhausted", now, got)
	}
}

// poolRelease calls Release and fails the test unless it accepts the port.
func poolRelease(t *testing.T, p *nat.PortPool, port uint16, now int64) {
	t.Helper()
	if !p.Release(port, now) {
		t.Fatalf("Release(%d, %d) = false; want true", port, now)
	}
}

// poolDrain takes every port Get hands out at now, in order.
func poolDrain(p *nat.PortPool, now int64) []uint16 {
	var ports []uint16
	for {
		port, ok := p.Get(now)
		if !ok {
			return ports
		}
		ports = append(ports, port)
	}
}

func TestPortPoolNew(t *testing.T) {
	tests := []struct {
		lo, hi uint16
	}{
		{1, 1},
		{10, 14},
		{1000, 1031}, // exactly one bitmap word
		{1000, 1032}, // one past
		{40000, 40999},
		{nat.DefaultPortLo, nat.DefaultPortHi},
		{1, 65535},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d-%d", tt.lo, tt.hi), func(t *testing.T) {
			p := nat.NewPortPool(tt.lo, tt.hi, time.Minute)
			size := int(tt.hi-tt.lo) + 1
			if lo, hi := p.Range(); lo != tt.lo || hi != tt.hi {
				t.Errorf("Range() = %d, %d; want %d, %d", lo, hi, tt.lo, tt.hi)
			}
			if p.Size() != size || p.Len() != size || p.Available(0) != size {
				t.Errorf("Size, Len, Available = %d, %d, %d; want %d each",
					p.Size(), p.Len(), p.Available(0), size)
			}
			// Every port is available at once, in ascending order, then
			// the pool is exhausted.
			got := poolDrain(p, 0)
			if len(got) != size {
				t.Fatalf("drained %d ports; want %d", len(got), size)
			}
			for i, port := range got {
				if want := tt.lo + uint16(i); port != want {
					t.Fatalf("port #%d = %d; want %d", i, port, want)
				}
			}
			if p.Len() != 0 || p.Available(math.MaxInt64) != 0 {
				t.Errorf("after drain Len, Available = %d, %d; want 0, 0", p.Len(), p.Available(math.MaxInt64))
			}
			poolGetNone(t, p, math.MaxInt64)
		})
	}
}

func TestPortPoolNewPanics(t *testing.T) {
	tests := []struct {
		name   string
		lo, hi uint16
		q      time.Duration
	}{
		{"port zero", 0, 10, time.Minute},
		{"inverted", 11, 10, time.Minute},
		{"negative quarantine", 1, 10, -time.Nanosecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("NewPortPool(%d, %d, %v) did not panic", tt.lo, tt.hi, tt.q)
				}
			}()
			nat.NewPortPool(tt.lo, tt.hi, tt.q)
		})
	}
}

func TestPortPoolQuarantine(t *testing.T) {
	tests := []struct {
		name string
		q    time.Duration
		at   int64 // release time
	}{
		{"zero", 0, 500},
		{"short", 10, 500},
		{"default", nat.DefaultQuarantine, 3 * int64(time.Hour)},
		{"negative clock", 10, -1000},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := nat.NewPortPool(100, 101, tt.q)
			poolGet(t, p, tt.at, 100)
			poolGet(t, p, tt.at, 101)
			poolRelease(t, p, 100, tt.at)
			if p.Len() != 1 || p.Available(tt.at+int64(tt.q)-1) != 0 || p.Available(tt.at+int64(tt.q)) != 1 {
				t.Errorf("Len, Available(ready-1), Available(ready) = %d, %d, %d; want 1, 0, 1",
					p.Len(), p.Available(tt.at+int64(tt.q)-1), p.Available(tt.at+int64(tt.q)))
			}
			if tt.q > 0 {
				poolGetNone(t, p, tt.at)
				poolGetNone(t, p, tt.at+int64(tt.q)-1)
			}
			poolGet(t, p, tt.at+int64(tt.q), 100)
			poolGetNone(t, p, math.MaxInt64)
		})
	}
}

// A release late enough that release time + quarantine overflows is never
// handed out before the end of the clock, not at once.
func TestPortPoolQuarantineOverflow(t *testing.T) {
	p := nat.NewPortPool(100, 100, 10)
	poolGet(t, p, 0, 100)
	poolRelease(t, p, 100, math.MaxInt64-5)
	poolGetNone(t, p, math.MaxInt64-1)
	poolGet(t, p, math.MaxInt64, 100)
}

func TestPortPoolFIFO(t *testing.T) {
	const q = 10
	p := nat.NewPortPool(10, 14, q)
	poolDrain(p, 0)
	poolRelease(t, p, 12, 100)
	poolRelease(t, p, 10, 101)
	poolRelease(t, p, 14, 102)
	poolGetNone(t, p, 109) // 12 is ready at 110
	poolGet(t, p, 110, 12)
	poolGetNone(t, p, 110)
	poolGet(t, p, 200, 10) // oldest release first, even when all are ready
	poolGet(t, p, 200, 14)
	poolGetNone(t, p, 200)

	// A port released with an earlier time than the one before it waits
	// for the earlier one's ready time: order and quarantine both hold.
	poolRelease(t, p, 11, 300)
	poolRelease(t, p, 13, 250)
	if got := p.Available(299 + q); got != 0 {
		t.Errorf("Available(%d) = %d; want 0", 299+q, got)
	}
	if got := p.Available(300 + q); got != 2 {
		t.Errorf("Available(%d) = %d; want 2", 300+q, got)
	}
	poolGetNone(t, p, 250+q)
	poolGet(t, p, 300+q, 11)
	poolGet(t, p, 300+q, 13)
}

func TestPortPoolExhaustion(t *testing.T) {
	const q = 1000
	p := nat.NewPortPool(nat.DefaultPortLo, nat.DefaultPortHi, q)
	ports := poolDrain(p, 0)
	if len(ports) != 64512 {
		t.Fatalf("default range gave %d ports; want 64512", len(ports))
	}
	seen := make(map[uint16]bool, len(ports))
	for _, port := range ports {
		if seen[port] || port < nat.DefaultPortLo {
			t.Fatalf("port %d handed out twice or below the range", port)
		}
		seen[port] = true
	}
	poolGetNone(t, p, 0)

	// Release half; none comes back until the quarantine ends, then
	// exactly those come back, and the pool is exhausted again.
	for i, port := range ports[:len(ports)/2] {
		poolRelease(t, p, port, int64(i))
	}
	poolGetNone(t, p, q-1)
	if got := p.Len(); got != len(ports)/2 {
		t.Errorf("Len = %d; want %d", got, len(ports)/2)
	}
	back := poolDrain(p, int64(len(ports)/2-1)+q)
	if len(back) != len(ports)/2 {
		t.Fatalf("after quarantine got %d ports back; want %d", len(back), len(ports)/2)
	}
	for i, port := range back {
		if port != ports[i] {
			t.Fatalf("port #%d back = %d; want %d", i, port, ports[i])
		}
	}
	poolGetNone(t, p, math.MaxInt64)
}

func TestPortPoolUnget(t *testing.T) {
	p := nat.NewPortPool(10, 14, 10)
	poolGet(t, p, 0, 10)
	poolGet(t, p, 0, 11)
	poolGet(t, p, 0, 12)
	if !p.Unget(11) || !p.Unget(10) {
		t.Fatal("Unget of an out port = false")
	}
	if got := p.Available(0); got != 4 {
		t.Errorf("Available = %d; want 4", got)
	}
	// Given-back ports come first (last in, first out), before ready ring
	// ports, with no quarantine.
	poolGet(t, p, 0, 10)
	poolGet(t, p, 0, 11)
	poolGet(t, p, 0, 13)
	poolGet(t, p, 0, 14)
	poolGetNone(t, p, 0)
	if !p.Unget(14) {
		t.Fatal("Unget(14) = false")
	}
	poolGet(t, p, 0, 14)

	// An ungot port is not out any more: releasing it is refused.
	if !p.Unget(13) {
		t.Fatal("Unget(13) = false")
	}
	if p.Release(13, 0) {
		t.Error("Release of a given-back port = true")
	}
	poolGet(t, p, 0, 13)
}

func TestPortPoolRefuses(t *testing.T) {
	tests := []struct {
		name string
		port uint16
	}{
		{"below range", 9},
		{"above range", 15},
		{"far above range", 65535},
		{"zero", 0},
		{"never out", 14},
		{"already released", 10},
		{"already given back", 11},
	}
	for _, tt := range tests {
		for _, op := range []string{"Release", "Unget"} {
			t.Run(op+"/"+tt.name, func(t *testing.T) {
				p := nat.NewPortPool(10, 14, 0)
				poolGet(t, p, 0, 10)
				poolGet(t, p, 0, 11)
				poolGet(t, p, 0, 12)
				poolRelease(t, p, 10, 0)
				if !p.Unget(11) {
					t.Fatal("Unget(11) = false")
				}
				before := p.Len()
				var ok bool
				if op == "Release" {
					ok = p.Release(tt.port, 0)
				} else {
					ok = p.Unget(tt.port)
				}
				if ok {
					t.Errorf("%s(%d) = true; want false", op, tt.port)
				}
				if p.Len() != before {
					t.Errorf("Len went from %d to %d", before, p.Len())
				}
				// The pool still hands out each free port exactly once.
				got := poolDrain(p, 0)
				want := []uint16{11, 13, 14, 10}
				if fmt.Sprint(got) != fmt.Sprint(want) {
					t.Errorf("drain = %v; want %v", got, want)
				}
			})
		}
	}
}

func TestSplitPorts(t *testing.T) {
	tests := []struct {
		lo, hi uint16
		n      int
	}{
		{nat.DefaultPortLo, nat.DefaultPortHi, 1},
		{nat.DefaultPortLo, nat.DefaultPortHi, 2},
		{nat.DefaultPortLo, nat.DefaultPortHi, 3},
		{nat.DefaultPortLo, nat.DefaultPortHi, 7},
		{nat.DefaultPortLo, nat.DefaultPortHi, 64},
		{1, 65535, 5},
		{10, 14, 5},
		{10, 14, 3},
		{7, 7, 1},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d-%d/%d", tt.lo, tt.hi, tt.n), func(t *testing.T) {
			shares := nat.SplitPorts(tt.lo, tt.hi, tt.n)
			if len(shares) != tt.n {
				t.Fatalf("got %d shares; want %d", len(shares), tt.n)
			}
			total := int(tt.hi-tt.lo) + 1
			next := int(tt.lo) // shares ascend and touch: disjoint and gap-free
			minSize, maxSize := total, 0
			for i, s := range shares {
				if int(s[0]) != next || s[1] < s[0] {
					t.Fatalf("share %d = %v; want one starting at %d", i, s, next)
				}
				size := int(s[1]-s[0]) + 1
				minSize, maxSize = min(minSize, size), max(maxSize, size)
				next = int(s[1]) + 1
			}
			if next != int(tt.hi)+1 {
				t.Errorf("shares end at %d; want %d", next-1, tt.hi)
			}
			if maxSize-minSize > 1 {
				t.Errorf("share sizes range over %d..%d; want within one", minSize, maxSize)
			}
			// Pools built from the shares hand out disjoint ports that
			// cover the range.
			seen := make(map[uint16]bool, total)
			for _, s := range shares {
				for _, port := range poolDrain(nat.NewPortPool(s[0], s[1], 0), 0) {
					if seen[port] {
						t.Fatalf("port %d in two shares", port)
					}
					seen[port] = true
				}
			}
			if len(seen) != total {
				t.Errorf("pools cover %d ports; want %d", len(seen), total)
			}
		})
	}
}

func TestSplitPortsPanics(t *testing.T) {
	tests := []struct {
		lo, hi uint16
		n      int
	}{
		{0, 10, 1},
		{11, 10, 1},
		{1, 10, 0},
		{1, 10, -1},
		{1, 10, 11},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%d-%d/%d", tt.lo, tt.hi, tt.n), func(t *testing.T) {
			defer func() {
				if recover() == nil {
					t.Errorf("SplitPorts(%d, %d, %d) did not panic", tt.lo, tt.hi, tt.n)
				}
			}()
			nat.SplitPorts(tt.lo, tt.hi, tt.n)
		})
	}
}

// poolModel is the reference the property tests hold a PortPool to: the
// same rules with maps and slices.
type poolModel struct {
	lo, hi      uint16
	q           int64
	queue       []poolModelEntry // released and never-used ports, FIFO
	stack       []uint16         // given back by Unget, LIFO
	out         map[uint16]bool
	lastRelease map[uint16]int64 // when each port was last released
	lastReady   int64
}

type poolModelEntry struct {
	port    uint16
	readyAt int64
}

func poolNewModel(lo, hi uint16, q int64) *poolModel {
	m := &poolModel{lo: lo, hi: hi, q: q, out: map[uint16]bool{}, lastRelease: map[uint16]int64{}, lastReady: math.MinInt64}
	for port := int(lo); port <= int(hi); port++ {
		m.queue = append(m.queue, poolModelEntry{uint16(port), math.MinInt64})
	}
	return m
}

func (m *poolModel) get(now int64) (uint16, bool) {
	if n := len(m.stack); n > 0 {
		port := m.stack[n-1]
		m.stack = m.stack[:n-1]
		m.out[port] = true
		return port, true
	}
	if len(m.queue) == 0 || m.queue[0].readyAt > now {
		return 0, false
	}
	port := m.queue[0].port
	m.queue = m.queue[1:]
	m.out[port] = true
	return port, true
}

func (m *poolModel) release(port uint16, now int64) bool {
	if !m.out[port] {
		return false
	}
	delete(m.out, port)
	m.lastReady = max(m.lastReady, now+m.q)
	m.queue = append(m.queue, poolModelEntry{port, m.lastReady})
	m.lastRelease[port] = now
	return true
}

func (m *poolModel) unget(port uint16) bool {
	if !m.out[port] {
		return false
	}
	delete(m.out, port)
	m.stack = append(m.stack, port)
	return true
}

func (m *poolModel) available(now int64) int {
	n := len(m.stack)
	for _, e := range m.queue {
		if e.readyAt > now {
			break
		}
		n++
	}
	return n
}

// pick returns an out port chosen by b, or any port near the range when
// there is none or b says so (to exercise refusals).
func (m *poolModel) pick(b byte) uint16 {
	if b&1 == 0 && len(m.out) > 0 {
		// Map order is random: scan the range so that b alone decides.
		k := int(b>>1) % len(m.out)
		for port := int(m.lo); port <= int(m.hi); port++ {
			if m.out[uint16(port)] {
				if k == 0 {
					return uint16(port)
				}
				k--
			}
		}
	}
	return m.lo - 1 + uint16(int(b>>1)%(int(m.hi-m.lo)+3))
}

// poolRunOps drives a PortPool and a poolModel with the operations encoded
// in ops, two bytes each, and fails at the first difference. Besides
// matching the model, every port Get hands out must not be out already, and
// a port handed out from the ring must have been released at least a
// quarantine ago.
func poolRunOps(t testing.TB, lo, hi uint16, q int64, ops []byte) {
	p := nat.NewPortPool(lo, hi, time.Duration(q))
	m := poolNewModel(lo, hi, q)
	var now int64
	ungot := map[uint16]bool{}
	for i := 0; i+1 < len(ops); i += 2 {
		op, arg := ops[i], ops[i+1]
		switch op % 5 {
		case 0, 1: // Get, twice as often as the rest
			port, ok := p.Get(now)
			wantPort, wantOK := m.get(now)
			if ok && !ungot[port] {
				if last, released := m.lastRelease[port]; released && now-last < q {
					t.Fatalf("op %d: Get(%d) = %d, released at %d: quarantine %d not over", i/2, now, port, last, q)
				}
			}
			if ok {
				delete(ungot, port)
			}
			if port != wantPort || ok != wantOK {
				t.Fatalf("op %d: Get(%d) = %d, %v; model says %d, %v", i/2, now, port, ok, wantPort, wantOK)
			}
		case 2: // Release, at a time up to 3 ns before the worker's clock
			port := m.pick(arg)
			at := now - int64(op>>5&3)
			if got, want := p.Release(port, at), m.release(port, at); got != want {
				t.Fatalf("op %d: Release(%d, %d) = %v; model says %v", i/2, port, at, got, want)
			}
		case 3: // Unget
			port := m.pick(arg)
			got, want := p.Unget(port), m.unget(port)
			if got != want {
				t.Fatalf("op %d: Unget(%d) = %v; model says %v", i/2, port, got, want)
			}
			if got {
				ungot[port] = true
			}
		case 4: // the clock advances
			now += int64(arg % 16)
		}
		if got, want := p.Len(), len(m.queue)+len(m.stack); got != want {
			t.Fatalf("op %d: Len = %d; model says %d", i/2, got, want)
		}
		if got, want := p.Available(now), m.available(now); got != want {
			t.Fatalf("op %d: Available(%d) = %d; model says %d", i/2, now, got, want)
		}
	}
}

func TestPortPoolModel(t *testing.T) {
	tests := []struct {
		lo, hi uint16
		q      int64
	}{
		{100, 100, 5},
		{100, 104, 0},
		{100, 104, 7},
		{1000, 1032, 20},  // two bitmap words, ring capacity 64
		{65500, 65535, 3}, // top of the port space
	}
	for _, tt := range tests {
		for seed := range uint64(20) {
			t.Run(fmt.Sprintf("%d-%d/q%d/seed%d", tt.lo, tt.hi, tt.q, seed), func(t *testing.T) {
				rng := rand.New(rand.NewPCG(seed, uint64(tt.lo)))
				ops := make([]byte, 4000)
				for i := range ops {
					ops[i] = byte(rng.Uint32())
				}
				poolRunOps(t, tt.lo, tt.hi, tt.q, ops)
			})
		}
	}
}

// FuzzPortPool runs the model check on fuzzer-chosen operation sequences.
// The first four bytes choose the range and the quarantine.
func FuzzPortPool(f *testing.F) {
	f.Add([]byte{100, 4, 5, 0, 0, 0, 0, 0, 2, 0, 4, 9, 0, 0})
	f.Add([]byte{1, 0, 0, 0, 0, 0, 3, 0, 0, 0, 2, 2, 0, 0})
	f.Add([]byte{200, 40, 3, 7, 0, 0, 0, 0, 3, 2, 2, 0, 4, 15, 0, 0, 1, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		if len(data) < 4 {
			return
		}
		lo := max(binary.BigEndian.Uint16(data), 1)
		hi := lo + min(uint16(data[2]%64), math.MaxUint16-lo)
		q := int64(data[3] % 32)
		poolRunOps(t, lo, hi, q, data[4:])
	})
}

// TestPortPoolConcurrent runs a worker (Get, sometimes Unget) against a
// sweeper (Release) on real goroutines and the monotonic clock, then checks
// from their logs that no port was handed out while out and none came back
// before its quarantine ended. The worker hands used ports to the sweeper
// through a log with an atomic count, which orders worker before sweeper
// only, so the race detector sees nothing order the sweeper's releases
// before the worker's Gets except the pool itself.
func TestPortPoolConcurrent(t *testing.T) {
	for _, q := range []time.Duration{0, 20 * time.Microsecond} {
		t.Run(q.String(), func(t *testing.T) {
			poolConcurrent(t, q)
		})
	}
}

type poolEvent struct {
	port uint16
	now  int64
	back bool // a Get of a port the worker had given back
}

func poolConcurrent(t *testing.T, q time.Duration) {
	const (
		lo, hi = 5000, 5063
		gets   = 30000
	)
	p := nat.NewPortPool(lo, hi, q)
	start := time.Now()
	clock := func() int64 { return int64(time.Since(start)) }

	var (
		used       = make([]uint16, gets) // filled by the worker, published by usedN
		usedN      atomic.Int64
		workerDone atomic.Bool
		getLog     = make([]poolEvent, 0, gets) // the worker's
		relLog     = make([]poolEvent, 0, gets) // the sweeper's
		wg         sync.WaitGroup
	)
	wg.Add(2)
	go func() { // worker
		defer wg.Done()
		defer workerDone.Store(true)
		rng := rand.New(rand.NewPCG(1, 2))
		var lastUngot uint16
		ungot := false
		for len(getLog) < gets {
			now := clock()
			port, ok := p.Get(now)
			if !ok {
				runtime.Gosched()
				continue
			}
			if ungot && port != lastUngot {
				t.Errorf("Get after Unget(%d) = %d; want the given-back port", lastUngot, port)
				return
			}
			getLog = append(getLog, poolEvent{port, now, ungot})
			ungot = false
			if rng.IntN(4) == 0 {
				if !p.Unget(port) {
					t.Errorf("Unget(%d) = false", port)
					return
				}
				lastUngot, ungot = port, true
				continue
			}
			n := usedN.Load()
			used[n] = port
			usedN.Store(n + 1)
		}
	}()
	go func() { // sweeper
		defer wg.Done()
		var done int64
		for {
			finished := workerDone.Load() // before usedN: then n is final
			n := usedN.Load()
			for ; done < n; done++ {
				now := clock()
				if !p.Release(used[done], now) {
					t.Errorf("Release(%d, %d) = false", used[done], now)
				}
				relLog = append(relLog, poolEvent{port: used[done], now: now})
			}
			if finished {
				return
			}
			runtime.Gosched()
		}
	}()
	wg.Wait()
	if t.Failed() {
		return
	}
	if len(getLog) != gets || len(relLog) != int(usedN.Load()) {
		t.Fatalf("%d Gets, %d Releases of %d used ports; want %d Gets and all released",
			len(getLog), len(relLog), usedN.Load(), gets)
	}

	// Per port, the k-th hand-out from the ring (k >= 2) must follow the
	// (k-1)-th release by at least the quarantine.
	releases := map[uint16][]int64{}
	for _, e := range relLog {
		releases[e.port] = append(releases[e.port], e.now)
	}
	issued := map[uint16]int{}
	for i, e := range getLog {
		if e.back {
			continue
		}
		k := issued[e.port]
		issued[e.port]++
		if k == 0 {
			continue // from the initial fill
		}
		rel := releases[e.port]
		if len(rel) < k {
			t.Fatalf("Get #%d handed out port %d for time %d after only %d releases",
				i, e.port, k+1, len(rel))
		}
		if e.now < rel[k-1]+int64(q) {
			t.Fatalf("Get #%d handed out port %d at %d, released at %d: quarantine %v not over",
				i, e.port, e.now, rel[k-1], q)
		}
	}
	// Everything is back: the released ports and at most one given back.
	if got := p.Len(); got != hi-lo+1 {
		t.Errorf("Len at the end = %d; want %d", got, hi-lo+1)
	}
	fromRing := 0
	for _, n := range issued {
		fromRing += n
	}
	t.Logf("%d Gets (%d from the ring), %d Releases", len(getLog), fromRing, len(relLog))
}

// TestPortPoolNoAllocs holds Get, Release and Unget to the hot-path
// contract: no allocation on any of their paths.
func TestPortPoolNoAllocs(t *testing.T) {
	const runs = 1000
	tests := []struct {
		name  string
		setup func(p *nat.PortPool) []uint16 // returns the ports now out
		op    func(p *nat.PortPool, out []uint16, i int) bool
	}{
		{"Get/ring", func(*nat.PortPool) []uint16 { return nil },
			func(p *nat.PortPool, _ []uint16, _ int) bool { _, ok := p.Get(0); return ok }},
		{"Get/exhausted", func(p *nat.PortPool) []uint16 { return poolDrain(p, 0) },
			func(p *nat.PortPool, _ []uint16, _ int) bool { _, ok := p.Get(0); return !ok }},
		{"Get/unget stack", func(p *nat.PortPool) []uint16 {
			out := poolDrain(p, 0)
			for _, port := range out {
				p.Unget(port)
			}
			return nil
		}, func(p *nat.PortPool, _ []uint16, _ int) bool { _, ok := p.Get(0); return ok }},
		{"Get/quarantine over", func(p *nat.PortPool) []uint16 {
			for _, port := range poolDrain(p, 0) {
				p.Release(port, 0)
			}
			return nil
		}, func(p *nat.PortPool, _ []uint16, _ int) bool { _, ok := p.Get(int64(time.Hour)); return ok }},
		{"Release", func(p *nat.PortPool) []uint16 { return poolDrain(p, 0) },
			func(p *nat.PortPool, out []uint16, i int) bool { return p.Release(out[i], 0) }},
		{"Release/refused", func(p *nat.PortPool) []uint16 { return nil },
			func(p *nat.PortPool, _ []uint16, i int) bool { return !p.Release(uint16(1000+i), 0) }},
		{"Unget", func(p *nat.PortPool) []uint16 { return poolDrain(p, 0) },
			func(p *nat.PortPool, out []uint16, i int) bool { return p.Unget(out[i]) }},
		{"Len and Available", func(p *nat.PortPool) []uint16 { return nil },
			func(p *nat.PortPool, _ []uint16, i int) bool { return p.Len()+p.Available(int64(i)) > 0 }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// AllocsPerRun calls f once to warm up, then once measured.
			// Each call gets a fresh pool and makes runs calls, so an
			// amortized allocation (a slice growing now and then) counts
			// in full instead of rounding down to zero.
			var pools [2]*nat.PortPool
			var outs [2][]uint16
			for k := range pools {
				pools[k] = nat.NewPortPool(1000, 1000+2*runs, time.Minute)
				outs[k] = tt.setup(pools[k])
			}
			call, failed := 0, false
			allocs := testing.AllocsPerRun(1, func() {
				for i := range runs {
					if !tt.op(pools[call], outs[call], i) {
						failed = true
					}
				}
				call++
			})
			if failed {
				t.Error("the operation did not do what the case expects")
			}
			if allocs != 0 {
				t.Errorf("%v allocations in %d calls; want 0", allocs, runs)
			}
		})
	}
}

func BenchmarkGetRelease(b *testing.B) {
	b.Run("release", func(b *testing.B) {
		// The whole default range cycles through the ring, as under a
		// steady load of short connections.
		p := nat.NewPortPool(nat.DefaultPortLo, nat.DefaultPortHi, 0)
		b.ReportAllocs()
		var now int64
		for b.Loop() {
			now++
			port, ok := p.Get(now)
			if !ok || !p.Release(port, now) {
				b.Fatal("pool failed")
			}
		}
	})
	b.Run("unget", func(b *testing.B) {
		p := nat.NewPortPool(nat.DefaultPortLo, nat.DefaultPortHi, nat.DefaultQuarantine)
		b.ReportAllocs()
		for b.Loop() {
			port, ok := p.Get(0)
			if !ok || !p.Unget(port) {
				b.Fatal("pool failed")
			}
		}
	})
	b.Run("exhausted", func(b *testing.B) {
		// The drop path under a SYN flood: every port in quarantine.
		p := nat.NewPortPool(nat.DefaultPortLo, nat.DefaultPortHi, nat.DefaultQuarantine)
		for _, port := range poolDrain(p, 0) {
			p.Release(port, 0)
		}
		b.ReportAllocs()
		for b.Loop() {
			if _, ok := p.Get(1); ok {
				b.Fatal("Get in quarantine succeeded")
			}
		}
	})
	b.Run("spsc", func(b *testing.B) {
		// The worker takes ports on this goroutine; a sweeper releases
		// them on another. ns/op is per port taken and released.
		p := nat.NewPortPool(nat.DefaultPortLo, nat.DefaultPortHi, 0)
		used := make([]uint16, b.N)
		var usedN atomic.Int64
		done := make(chan struct{})
		go func() {
			defer close(done)
			var n int64
			for n < int64(len(used)) {
				for m := usedN.Load(); n < m; n++ {
					p.Release(used[n], 0)
				}
				runtime.Gosched()
			}
		}()
		b.ReportAllocs()
		b.ResetTimer()
		for i := range used {
			port, ok := p.Get(0)
			for !ok {
				runtime.Gosched()
				port, ok = p.Get(0)
			}
			used[i] = port
			usedN.Store(int64(i + 1))
		}
		<-done
	})
}

// TestPortPoolShuffle: a shuffled pool hands out every port of its range
// once, not in order, and two pools not in the same order.
func TestPortPoolShuffle(t *testing.T) {
	a, b := nat.NewPortPool(1024, 65535, 0), nat.NewPortPool(1024, 65535, 0)
	a.Shuffle()
	b.Shuffle()
	seen := make([]bool, 65536)
	inOrder, same := 0, 0
	for i := range 65535 - 1024 + 1 {
		pa, ok := a.Get(0)
		pb, okb := b.Get(0)
		if !ok || !okb {
			t.Fatalf("Get #%d failed", i)
		}
		if pa < 1024 || seen[pa] {
			t.Fatalf("port %d out of range or handed out twice", pa)
		}
		seen[pa] = true
		if pa == uint16(1024+i) {
			inOrder++
		}
		if pa == pb {
			same++
		}
	}
	if _, ok := a.Get(0); ok {
		t.Fatal("a port beyond the range")
	}
	// A random permutation has one fixed point on average.
	if inOrder > 20 || same > 20 {
		t.Fatalf("%d ports in range order, %d the same in both pools", inOrder, same)
	}
	defer func() {
		if recover() == nil {
			t.Error("Shuffle of a pool in use did not panic")
		}
	}()
	a.Shuffle()
}
