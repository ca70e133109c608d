package health

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/internal/testenv"
)

// fakeClock is a manual Clock: time moves only on Advance.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock { return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)} }

func (f *fakeClock) Now() time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.now
}

func (f *fakeClock) After(d time.Duration) <-chan time.Time {
	f.mu.Lock()
	defer f.mu.Unlock()
	ch := make(chan time.Time, 1)
	if d <= 0 {
		ch <- f.now
		return ch
	}
	f.waiters = append(f.waiters, fakeWaiter{f.now.Add(d), ch})
	return ch
}

func (f *fakeClock) Advance(d time.Duration) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.now = f.now.Add(d)
	kept := f.waiters[:0]
	for _, w := range f.waiters {
		if w.at.After(f.now) {
			kept = append(kept, w)
		} else {
			w.ch <- f.now
		}
	}
	f.waiters = kept
}

// fakeNet is a Dial whose TCP connects succeed or are refused per address.
type fakeNet struct {
	mu    sync.Mutex
	up    map[string]bool
	dials map[string]int
}

func newFakeNet() *fakeNet { return &fakeNet{up: map[string]bool{}, dials: map[string]int{}} }

func (n *fakeNet) set(a netip.AddrPort, up bool) {
	n.mu.Lock()
	n.up[a.String()] = up
	n.mu.Unlock()
}

func (n *fakeNet) Dial(ctx context.Context, network, addr string) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	n.mu.Lock()
	up := n.up[addr]
	n.dials[addr]++
	n.mu.Unlock()
	if !up {
		return nil, fmt.Errorf("dial %s %s: %w", network, addr, errors.New("connection refused"))
	}
	a, b := net.Pipe()
	b.Close()
	return a, nil
}

// change is one OnChange call.
type change struct {
	addr     netip.AddrPort
	from, to State
}

// recorder collects OnChange calls.
type recorder struct {
	mu      sync.Mutex
	changes []change
}

func (r *recorder) OnChange(t Target, from, to State) {
	r.mu.Lock()
	r.changes = append(r.changes, change{t.Addr, from, to})
	r.mu.Unlock()
}

func (r *recorder) get() []change {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]change(nil), r.changes...)
}

// drive advances clk in steps, letting the checker run between steps, until
// cond holds; it fails t after a bounded number of steps.
func drive(t *testing.T, clk *fakeClock, step time.Duration, what string, cond func() bool) {
	t.Helper()
	for range 3000 {
		if cond() {
			return
		}
		clk.Advance(step)
		time.Sleep(200 * time.Microsecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

func probes(c *Checker, a netip.AddrPort) uint64 {
	for _, s := range c.Snapshot() {
		if s.Target.Addr == a {
			return s.ProbesOK + s.ProbesFailed
		}
	}
	return 0
}

var testSpec = Spec{Interval: time.Second, Timeout: 500 * time.Millisecond, Rise: 2, Fall: 3}

func TestCheckerTransitions(t *testing.T) {
	clk, fnet, rec := newFakeClock(), newFakeNet(), &recorder{}
	var logBuf testenv.Buffer
	c := New(Options{
		Log:      slog.New(slog.NewTextHandler(&logBuf, nil)),
		Dial:     fnet.Dial,
		Clock:    clk,
		Rand:     rand.New(rand.NewPCG(1, 2)),
		OnChange: rec.OnChange,
	})
	a, b := mustAddr(t, "198.18.6.1:80"), mustAddr(t, "198.18.6.2:80")
	fnet.set(a, true)
	c.Set([]Target{{a, testSpec}, {b, testSpec}})
	if c.State(a) != StateUnknown || c.State(b) != StateUnknown {
		t.Fatalf("new targets not Unknown: %v %v", c.State(a), c.State(b))
	}

	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	step := 50 * time.Millisecond
	drive(t, clk, step, "a up, b down", func() bool { return c.State(a) == StateUp && c.State(b) == StateDown })
	fnet.set(a, false)
	fnet.set(b, true)
	drive(t, clk, step, "a down, b up", func() bool { return c.State(a) == StateDown && c.State(b) == StateUp })
	// Several more intervals of steady state: no more transitions.
	pa := probes(c, a)
	drive(t, clk, step, "5 more probes", func() bool { return probes(c, a) >= pa+5 })

	want := []change{{a, StateUnknown, StateUp}, {b, StateUnknown, StateDown}, {a, StateUp, StateDown}, {b, StateDown, StateUp}}
	got := rec.get()
	if len(got) != len(want) {
		t.Fatalf("OnChange calls = %v, want %v", got, want)
	}
	// a and b are probed independently: compare per address.
	for _, addr := range []netip.AddrPort{a, b} {
		var g, w []change
		for _, ch := range got {
			if ch.addr == addr {
				g = append(g, ch)
			}
		}
		for _, ch := range want {
			if ch.addr == addr {
				w = append(w, ch)
			}
		}
		if fmt.Sprint(g) != fmt.Sprint(w) {
			t.Errorf("%v: OnChange calls %v, want %v", addr, g, w)
		}
	}

	// One log line per transition, none per probe.
	logs := logBuf.String()
	if n := strings.Count(logs, "backend health changed"); n != 4 {
		t.Errorf("%d transition log lines, want 4:\n%s", n, logs)
	}
	if n := strings.Count(logs, "\n"); n != 4 {
		t.Errorf("%d log lines, want 4:\n%s", n, logs)
	}
	if !strings.Contains(logs, "component=health") || !strings.Contains(logs, "level=WARN") {
		t.Errorf("log lines lack component or WARN level:\n%s", logs)
	}

	st := c.Snapshot()
	if len(st) != 2 || st[0].Target.Addr != a || st[1].Target.Addr != b {
		t.Fatalf("Snapshot = %+v", st)
	}
	sa := st[0]
	if sa.State != StateDown || sa.ConsecutiveFail < 3 || sa.ConsecutiveOK != 0 || sa.ProbesOK < 2 ||
		sa.ProbesFailed < 3 || sa.LastError == nil || sa.LastChange.IsZero() || sa.LastProbe.IsZero() {
		t.Errorf("Snapshot of a = %+v", sa)
	}
	if sb := st[1]; sb.LastError == nil || sb.State != StateUp || sb.ConsecutiveOK < 2 {
		t.Errorf("Snapshot of b = %+v (LastError must survive recovery)", sb)
	}
}

// TestCheckerSchedule: probes of one target are Interval ± Jitter apart.
func TestCheckerSchedule(t *testing.T) {
	clk, fnet := newFakeClock(), newFakeNet()
	c := New(Options{Dial: fnet.Dial, Clock: clk, Rand: rand.New(rand.NewPCG(3, 4))})
	a := mustAddr(t, "198.18.6.1:80")
	fnet.set(a, true)
	spec := testSpec
	spec.Jitter = 0.2
	c.Set([]Target{{a, spec}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()

	var times []time.Time
	last := time.Time{}
	drive(t, clk, 10*time.Millisecond, "10 probes", func() bool {
		st := c.Snapshot()[0]
		if st.LastProbe != last {
			last = st.LastProbe
			times = append(times, last)
		}
		return len(times) >= 10
	})
	gaps := map[time.Duration]bool{}
	for i := 1; i < len(times); i++ {
		// The next probe is scheduled from the start of the previous one,
		// so a gap is never short; it may be late by the steps the Run
		// goroutine lagged behind the test (allow 100ms of them).
		gap := times[i].Sub(times[i-1])
		gaps[gap] = true
		if gap < 800*time.Millisecond || gap > 1300*time.Millisecond {
			t.Errorf("probe %d: %v after the previous, want 1s ± 20%%", i, gap)
		}
	}
	if len(gaps) < 3 {
		t.Errorf("gaps between probes %v: no jitter", gaps)
	}
}

// TestJitter: the first probes of 100 targets added together are spread
// over the interval, and a seeded source gives the same schedule again.
func TestJitter(t *testing.T) {
	const n = 100
	interval := testSpec.Interval
	schedule := func(seed uint64) []time.Duration {
		clk := newFakeClock()
		c := New(Options{Clock: clk, Rand: rand.New(rand.NewPCG(seed, 0))})
		var ts []Target
		for i := range n {
			ts = append(ts, Target{netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 80), testSpec})
		}
		c.Set(ts)
		t0 := clk.Now()
		c.mu.Lock()
		defer c.mu.Unlock()
		c.start(t0)
		first := make(map[netip.AddrPort]time.Duration)
		out := make([]time.Duration, n)
		for d := time.Duration(0); d <= interval; d += time.Millisecond {
			for _, e := range c.popDue(t0.Add(d)) {
				if _, dup := first[e.t.Addr]; dup {
					t.Fatalf("%v probed twice", e.t.Addr)
				}
				first[e.t.Addr] = d
				out[e.t.Addr.Addr().As4()[3]] = d
			}
		}
		if len(first) != n {
			t.Fatalf("%d of %d targets probed within one interval", len(first), n)
		}
		return out
	}
	got := schedule(42)
	var buckets [10]int
	atZero := 0
	for _, d := range got {
		if d >= interval {
			t.Fatalf("first probe at %v, not within the interval", d)
		}
		if d == 0 {
			atZero++
		}
		buckets[d*10/interval]++
	}
	if atZero > 3 {
		t.Errorf("%d of %d targets probed at t=0", atZero, n)
	}
	for i, b := range buckets {
		// Uniform: 10 per tenth; 2 or fewer would be a 1-in-1000 draw.
		if b < 3 || b > 25 {
			t.Errorf("tenth %d of the interval holds %d first probes (all: %v)", i, b, buckets)
		}
	}
	if again := schedule(42); fmt.Sprint(again) != fmt.Sprint(got) {
		t.Error("same seed gave a different schedule")
	}
	if other := schedule(43); fmt.Sprint(other) == fmt.Sprint(got) {
		t.Error("different seeds gave the same schedule")
	}
}

func TestSet(t *testing.T) {
	clk, fnet, rec := newFakeClock(), newFakeNet(), &recorder{}
	c := New(Options{Dial: fnet.Dial, Clock: clk, Rand: rand.New(rand.NewPCG(5, 6)), OnChange: rec.OnChange})
	a, b, d := mustAddr(t, "198.18.6.1:80"), mustAddr(t, "198.18.6.2:80"), mustAddr(t, "198.18.6.4:80")
	fnet.set(a, true)
	fnet.set(d, true)
	c.Set([]Target{{a, testSpec}, {b, testSpec}, {d, testSpec}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	step := 50 * time.Millisecond
	drive(t, clk, step, "a and d up, b down", func() bool {
		return c.State(a) == StateUp && c.State(b) == StateDown && c.State(d) == StateUp
	})
	before := c.Snapshot()

	// Keep a (same spec, defaults spelled out), drop b, change d's port,
	// add e; plus an invalid and a duplicate target that Set must skip.
	e := mustAddr(t, "198.18.6.5:80")
	fnet.set(e, true)
	dSpec := testSpec
	dSpec.Port = 8080
	aSpec := testSpec.WithDefaults()
	pb := fnet.count(b)
	c.Set([]Target{{a, aSpec}, {d, dSpec}, {e, testSpec}, {mustAddr(t, "198.18.6.6:80"), Spec{Jitter: 3}}, {e, Spec{Kind: KindExec, Command: []string{"true"}}}})

	if got := c.State(a); got != StateUp {
		t.Errorf("kept target a: %v, want up", got)
	}
	if got := c.State(b); got != StateUnknown {
		t.Errorf("removed target b: %v, want unknown", got)
	}
	if got := c.State(d); got != StateUnknown {
		t.Errorf("changed target d: %v, want unknown (new check)", got)
	}
	after := c.Snapshot()
	var addrs []netip.AddrPort
	for _, s := range after {
		addrs = append(addrs, s.Target.Addr)
	}
	if fmt.Sprint(addrs) != fmt.Sprint([]netip.AddrPort{a, d, e}) {
		t.Fatalf("targets after Set: %v, want [a d e]", addrs)
	}
	if after[0].ProbesOK != before[0].ProbesOK || after[0].LastChange != before[0].LastChange {
		t.Errorf("kept target lost its counters: before %+v, after %+v", before[0], after[0])
	}
	if after[1].ProbesOK != 0 || after[1].Target.Spec.Port != 8080 {
		t.Errorf("changed target kept old state: %+v", after[1])
	}
	if after[2].Target.Spec.Kind != KindTCP {
		t.Errorf("duplicate target replaced the first: %+v", after[2])
	}

	// d is probed on port 8080 now, which the fake net refuses.
	nb := len(rec.get())
	drive(t, clk, step, "d down, e up", func() bool { return c.State(d) == StateDown && c.State(e) == StateUp })
	drive(t, clk, step, "a probed 3 more times", func() bool { return probes(c, a) >= after[0].ProbesOK+3 })
	if fnet.count(b) != pb {
		t.Error("removed target b is still probed")
	}
	for _, ch := range rec.get()[nb:] {
		if ch.addr == a || ch.addr == b {
			t.Errorf("unexpected transition after Set: %+v", ch)
		}
	}
	if got := rec.get()[nb:]; len(got) != 2 {
		t.Errorf("transitions after Set: %v, want d and e once each", got)
	}
}

func (n *fakeNet) count(a netip.AddrPort) int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.dials[a.String()]
}

// TestRunStops: cancelling Run's context ends it promptly, cancelling a
// probe that would otherwise block for its whole Timeout.
func TestRunStops(t *testing.T) {
	clk := newFakeClock()
	entered := make(chan struct{}, 1)
	dial := func(ctx context.Context, network, addr string) (net.Conn, error) {
		select {
		case entered <- struct{}{}:
		default:
		}
		<-ctx.Done()
		return nil, ctx.Err()
	}
	c := New(Options{Dial: dial, Clock: clk})
	spec := Spec{Interval: 20 * time.Second, Timeout: 10 * time.Second}
	c.Set([]Target{{mustAddr(t, "198.18.6.1:80"), spec}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	clk2 := make(chan struct{})
	go func() {
		defer close(clk2)
		for {
			select {
			case <-entered:
				return
			case <-done:
				return
			default:
				clk.Advance(time.Second)
				time.Sleep(time.Millisecond)
			}
		}
	}()
	select {
	case <-clk2:
	case <-time.After(5 * time.Second):
		t.Fatal("probe never started")
	}
	start := time.Now()
	cancel()
	select {
	case <-done:
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return within 2s of cancel")
	}
	if took := time.Since(start); took > 500*time.Millisecond {
		t.Errorf("Run took %v to stop", took)
	}

	// A stopped checker can run again, with state kept.
	ctx2, cancel2 := context.WithCancel(context.Background())
	done2 := make(chan struct{})
	go func() { c.Run(ctx2); close(done2) }()
	cancel2()
	<-done2
}

// TestRunTwice: a second concurrent Run returns at once.
func TestRunTwice(t *testing.T) {
	c := New(Options{Clock: newFakeClock()})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	for !c.isRunning() {
		time.Sleep(time.Millisecond)
	}
	second := make(chan struct{})
	go func() { c.Run(context.Background()); close(second) }()
	select {
	case <-second:
	case <-time.After(2 * time.Second):
		t.Error("second Run did not return")
	}
	cancel()
	<-done
}

func (c *Checker) isRunning() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.running
}

// TestCheckerRealNetwork runs a Checker on the real clock against real
// loopback servers, end to end.
func TestCheckerRealNetwork(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			c.Close()
		}
	}()
	up, down := mustAddr(t, l.Addr().String()), closedPort(t, "tcp")
	spec := Spec{Interval: 50 * time.Millisecond, Timeout: 40 * time.Millisecond, Rise: 2, Fall: 2}
	changed := make(chan change, 4)
	c := New(Options{OnChange: func(t Target, from, to State) { changed <- change{t.Addr, from, to} }})
	c.Set([]Target{{up, spec}, {down, spec}})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { c.Run(ctx); close(done) }()
	defer func() { cancel(); <-done }()
	seen := map[netip.AddrPort]State{}
	for len(seen) < 2 {
		select {
		case ch := <-changed:
			seen[ch.addr] = ch.to
		case <-time.After(3 * time.Second):
			t.Fatalf("transitions after 3s: %v", seen)
		}
	}
	if seen[up] != StateUp || seen[down] != StateDown {
		t.Errorf("transitions = %v", seen)
	}
}

func TestStateNoAllocs(t *testing.T) {
	c := New(Options{Clock: newFakeClock()})
	a := mustAddr(t, "198.18.6.1:80")
	c.Set([]Target{{a, testSpec}})
	if n := testing.AllocsPerRun(1000, func() { c.State(a) }); n != 0 {
		t.Errorf("State: %v allocs, want 0", n)
	}
}

func BenchmarkCheckerState(b *testing.B) {
	b.ReportAllocs()
	c := New(Options{Clock: newFakeClock()})
	var ts []Target
	for i := range 1000 {
		ts = append(ts, Target{netip.AddrPortFrom(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), 80), testSpec})
	}
	c.Set(ts)
	for i := 0; b.Loop(); i++ {
		c.State(ts[i%len(ts)].Addr)
	}
}
