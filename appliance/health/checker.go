package health

import (
	"container/heap"
	"context"
	"crypto/tls"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"sync"
	"time"
)

// Clock is the time source of a Checker's scheduler, so that tests can drive
// time by hand. Probe timeouts always use real time (they bound real
// network operations).
type Clock interface {
	Now() time.Time
	// After returns a channel that receives once d has elapsed (at once if
	// d <= 0).
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// Options configure a Checker. The zero value is usable: real network and
// clock, no logging, no callback.
type Options struct {
	// Log receives transitions (never individual probes); nil discards.
	// The Checker scopes it With("component", "health").
	Log *slog.Logger

	// Dial connects TCP and UDP probes (HTTP and HTTPS included); nil uses
	// a net.Dialer. Tests fake the network here; the lab dials from a
	// namespace. Exec checks do not use it.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)

	// Clock schedules probes; nil uses the real clock.
	Clock Clock

	// Rand draws first-probe offsets and jitter; nil uses a randomly seeded
	// source. Give a seeded source for a reproducible schedule. The Checker
	// owns it from New on.
	Rand *rand.Rand

	// OnChange is called on every transition of a target (not per probe),
	// from the goroutine running Run, with no lock held. It must not block
	// for long: probe results wait for it. It may call State, Snapshot and
	// Set.
	OnChange func(t Target, from, to State)
}

// Status is one target's health as Snapshot reports it.
type Status struct {
	Target Target // with its Spec's defaults filled in
	State  State

	ConsecutiveOK, ConsecutiveFail int

	// LastError is the error of the most recent failed probe, kept after
	// the target recovers; nil if no probe has failed.
	LastError error

	LastProbe  time.Time // start of the most recent completed probe
	LastChange time.Time // last transition; zero if none yet

	ProbesOK, ProbesFailed uint64
}

// Checker runs the health checks of a set of targets and reports their
// transitions. Create one with New, give it targets with Set and run it with
// Run. All methods are safe for concurrent use; Run must not be called
// again until the previous call has returned. The zero Checker is not
// usable.
type Checker struct {
	log      *slog.Logger
	dial     func(ctx context.Context, network, addr string) (net.Conn, error)
	clock    Clock
	onChange func(t Target, from, to State)
	http     *http.Client

	wake    chan struct{} // Set -> Run: the schedule changed (buffered, 1)
	results chan result   // probe goroutines -> Run

	mu      sync.Mutex
	rng     *rand.Rand
	targets map[netip.AddrPort]*entry
	queue   queue // targets waiting for their next probe; not those in flight
	running bool
}

// entry is one target's live state. All fields are guarded by Checker.mu.
type entry struct {
	t      Target // Spec with defaults
	m      Machine
	offset time.Duration // first probe's offset from the start of Run
	next   time.Time     // next probe; valid when index >= 0
	index  int           // position in Checker.queue; -1 when not queued

	inFlight bool
	launched time.Time
	cancel   context.CancelFunc // cancels the probe in flight

	lastErr    error
	lastProbe  time.Time
	lastChange time.Time
	nOK, nFail uint64
}

type result struct {
	e   *entry
	err error
}

// New returns a Checker with no targets.
func New(o Options) *Checker {
	c := &Checker{
		log:      o.Log,
		dial:     o.Dial,
		clock:    o.Clock,
		onChange: o.OnChange,
		rng:      o.Rand,
		wake:     make(chan struct{}, 1),
		results:  make(chan result),
		targets:  make(map[netip.AddrPort]*entry),
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	c.log = c.log.With("component", "health")
	if c.dial == nil {
		c.dial = defaultDial
	}
	if c.clock == nil {
		c.clock = realClock{}
	}
	if c.rng == nil {
		c.rng = rand.New(rand.NewPCG(rand.Uint64(), rand.Uint64()))
	}
	c.http = &http.Client{
		Transport: &http.Transport{
			Proxy:       nil, // never through the environment's proxy
			DialContext: c.dial,
			// Health, not identity: backends commonly serve self-signed
			// certificates to the load balancer.
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true},
			DisableKeepAlives: true, // every probe opens a fresh connection
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return c
}

// Set replaces the target set. A target that stays (same Addr and the same
// Spec after defaults) keeps its state, counters and schedule; a new target,
// or one whose Spec changed, starts Unknown with its first probe at a random
// offset within its Interval; a removed target stops (its probe in flight is
// cancelled) and its state is forgotten, without an OnChange call.
//
// Set skips, and logs at Error, targets whose Spec does not Validate and
// all but the first of targets with the same Addr; callers validate first.
func (c *Checker) Set(targets []Target) {
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.clock.Now()
	keep := make(map[netip.AddrPort]*entry, len(targets))
	for _, t := range targets {
		if err := t.Spec.Validate(); err != nil {
			c.log.Error("health check ignored", "backend", t.Addr, "error", err)
			continue
		}
		if _, dup := keep[t.Addr]; dup {
			c.log.Error("health check ignored: duplicate backend", "backend", t.Addr)
			continue
		}
		t.Spec = t.Spec.WithDefaults()
		if e, ok := c.targets[t.Addr]; ok && e.t.Spec.Equal(t.Spec) {
			keep[t.Addr] = e
			continue
		}
		e := &entry{
			t:      t,
			m:      NewMachine(t.Spec.Rise, t.Spec.Fall),
			offset: time.Duration(c.rng.Float64() * float64(t.Spec.Interval)),
			index:  -1,
		}
		if c.running {
			e.next = now.Add(e.offset)
			heap.Push(&c.queue, e)
		}
		keep[t.Addr] = e
	}
	for a, e := range c.targets {
		if keep[a] != e {
			c.drop(e)
		}
	}
	c.targets = keep
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// drop unschedules e and cancels its probe in flight. c.mu is held.
func (c *Checker) drop(e *entry) {
	if e.index >= 0 {
		heap.Remove(&c.queue, e.index)
	}
	if e.cancel != nil {
		e.cancel()
		e.cancel = nil
	}
}

// State returns the state of the target at a; StateUnknown if there is no
// such target.
func (c *Checker) State(a netip.AddrPort) State {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.targets[a]; ok {
		return e.m.State()
	}
	return StateUnknown
}

// Snapshot returns the status of every target, ordered by address.
func (c *Checker) Snapshot() []Status {
	c.mu.Lock()
	out := make([]Status, 0, len(c.targets))
	for _, e := range c.targets {
		ok, fail := e.m.Consecutive()
		out = append(out, Status{
			Target:          e.t,
			State:           e.m.State(),
			ConsecutiveOK:   ok,
			ConsecutiveFail: fail,
			LastError:       e.lastErr,
			LastProbe:       e.lastProbe,
			LastChange:      e.lastChange,
			ProbesOK:        e.nOK,
			ProbesFailed:    e.nFail,
		})
	}
	c.mu.Unlock()
	slices.SortFunc(out, func(a, b Status) int { return a.Target.Addr.Compare(b.Target.Addr) })
	return out
}

// Run probes the targets until ctx ends, then cancels the probes in flight
// and returns once they have finished. Probes run in their own goroutines;
// results, transitions and OnChange calls are handled on Run's goroutine.
// Run may be called again after it returns; targets keep their state.
func (c *Checker) Run(ctx context.Context) {
	c.mu.Lock()
	if c.running {
		c.mu.Unlock()
		c.log.Error("health checker already running")
		return
	}
	c.start(c.clock.Now())
	c.mu.Unlock()

	var wg sync.WaitGroup
	defer func() {
		wg.Wait()
		c.mu.Lock()
		c.stop()
		c.mu.Unlock()
	}()
	for {
		c.mu.Lock()
		now := c.clock.Now()
		for _, e := range c.popDue(now) {
			c.launch(ctx, &wg, e)
		}
		var timer <-chan time.Time
		if len(c.queue) > 0 {
			timer = c.clock.After(c.queue[0].next.Sub(now))
		}
		c.mu.Unlock()

		select {
		case <-ctx.Done():
			return
		case <-timer:
		case <-c.wake:
		case r := <-c.results:
			c.apply(r)
		}
	}
}

// start schedules every target's first probe relative to now. c.mu is held.
func (c *Checker) start(now time.Time) {
	c.running = true
	c.queue = c.queue[:0]
	for _, e := range c.targets {
		e.next = now.Add(e.offset)
		e.index = -1
		heap.Push(&c.queue, e)
	}
}

// stop forgets the schedule after Run's probes have all finished. c.mu is
// held.
func (c *Checker) stop() {
	c.running = false
	for _, e := range c.targets {
		e.index, e.inFlight, e.cancel = -1, false, nil
	}
	c.queue = c.queue[:0]
}

// popDue removes the targets due at now from the queue and marks them in
// flight. c.mu is held.
func (c *Checker) popDue(now time.Time) []*entry {
	var due []*entry
	for len(c.queue) > 0 && !c.queue[0].next.After(now) {
		e := heap.Pop(&c.queue).(*entry)
		e.inFlight, e.launched = true, now
		due = append(due, e)
	}
	return due
}

// launch starts e's probe. c.mu is held.
func (c *Checker) launch(ctx context.Context, wg *sync.WaitGroup, e *entry) {
	pctx, cancel := context.WithCancel(ctx)
	e.cancel = cancel
	t := e.t
	wg.Go(func() {
		defer cancel()
		err := c.Probe(pctx, t)
		select {
		case c.results <- result{e, err}:
		case <-ctx.Done():
		}
	})
}

// apply records a probe result, schedules the next probe and reports a
// transition. Called on Run's goroutine without c.mu.
func (c *Checker) apply(r result) {
	c.mu.Lock()
	e := r.e
	if c.targets[e.t.Addr] != e { // removed or replaced meanwhile
		c.mu.Unlock()
		return
	}
	now := c.clock.Now()
	e.inFlight, e.cancel = false, nil
	e.lastProbe = e.launched
	if r.err == nil {
		e.nOK++
	} else {
		e.nFail++
		e.lastErr = r.err
	}
	from, to := e.m.Observe(r.err == nil)
	if from != to {
		e.lastChange = now
	}
	e.next = e.launched.Add(c.period(e.t.Spec))
	if e.next.Before(now) {
		e.next = now
	}
	heap.Push(&c.queue, e)
	t := e.t
	c.mu.Unlock()

	if from == to {
		return
	}
	level := slog.LevelInfo
	if to == StateDown {
		level = slog.LevelWarn
	}
	attrs := []any{"backend", t.Addr, "check", t.Spec.Kind.String(), "from", from.String(), "to", to.String()}
	if r.err != nil {
		attrs = append(attrs, "error", r.err)
	}
	c.log.Log(context.Background(), level, "backend health changed", attrs...)
	if c.onChange != nil {
		c.onChange(t, from, to)
	}
}

// period returns one jittered interval of s. c.mu is held (for c.rng).
func (c *Checker) period(s Spec) time.Duration {
	f := 1 + s.Jitter*(2*c.rng.Float64()-1)
	return time.Duration(f * float64(s.Interval))
}

// queue is a min-heap of entries by next probe time.
type queue []*entry

func (q queue) Len() int           { return len(q) }
func (q queue) Less(i, j int) bool { return q[i].next.Before(q[j].next) }
func (q queue) Swap(i, j int) {
	q[i], q[j] = q[j], q[i]
	q[i].index, q[j].index = i, j
}
func (q *queue) Push(x any) {
	e := x.(*entry)
	e.index = len(*q)
	*q = append(*q, e)
}
func (q *queue) Pop() any {
	old := *q
	e := old[len(old)-1]
	old[len(old)-1] = nil
	e.index = -1
	*q = old[:len(old)-1]
	return e
}
