package vrrp

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// t0 is the manual clock's origin; every time in these tests is t0 plus an
// offset the test names.
var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func at(d time.Duration) time.Time { return t0.Add(d) }

// event is one action a node took on the link, at a clock time.
type event struct {
	at   time.Duration // since t0
	node string
	act  Action
}

func (e event) String() string { return fmt.Sprintf("%v %s %T%v", e.at, e.node, e.act, e.act) }

// member is one Node on the link.
type member struct {
	name string
	addr netip.Addr
	n    *Node
	up   bool // false: crashed or not started; sends and receives nothing
}

// link is an in-memory VRRP segment. Every SendAdvert a node returns is
// marshalled, parsed at each other live member (so the codec is on the
// path) and delivered at the same instant; the actions that delivery causes
// are handled in turn. The clock only moves when the test calls run.
type link struct {
	t       *testing.T
	now     time.Time
	members []*member
	cut     bool // partitioned: adverts are lost
	events  []event
}

func newLink(t *testing.T) *link { return &link{t: t, now: t0} }

func (l *link) add(name, addr string, cfg Config) *member {
	l.t.Helper()
	cfg.Addr = netip.MustParseAddr(addr)
	if cfg.VRID == 0 {
		cfg.VRID = 7
	}
	cfg.Addrs = []netip.Addr{vip}
	n, err := NewNode(cfg)
	if err != nil {
		l.t.Fatal(err)
	}
	m := &member{name: name, addr: cfg.Addr, n: n}
	l.members = append(l.members, m)
	return m
}

func (l *link) start(m *member) {
	m.up = true
	l.handle(m, m.n.Start(l.now))
}

// crash stops m without a word, as a power failure would.
func (l *link) crash(m *member) { m.up = false }

func (l *link) shutdown(m *member) {
	l.handle(m, m.n.Shutdown(l.now))
	m.up = false
}

func (l *link) setPriority(m *member, p uint8) {
	l.t.Helper()
	acts, err := m.n.SetPriority(l.now, p)
	if err != nil {
		l.t.Fatal(err)
	}
	l.handle(m, acts)
}

// handle records m's actions and delivers its adverts.
func (l *link) handle(m *member, acts []Action) {
	type pending struct {
		m    *member
		acts []Action
	}
	q := []pending{{m, acts}}
	for len(q) > 0 {
		p := q[0]
		q = q[1:]
		for _, act := range p.acts {
			l.events = append(l.events, event{l.now.Sub(t0), p.m.name, act})
			s, ok := act.(SendAdvert)
			if !ok || l.cut {
				continue
			}
			adv := p.m.n.Advertisement(s)
			b, err := adv.Marshal(p.m.addr, MulticastGroup)
			if err != nil {
				l.t.Fatalf("%s: marshal: %v", p.m.name, err)
			}
			for _, o := range l.members {
				if o == p.m || !o.up {
					continue
				}
				got, err := Parse(b, p.m.addr, MulticastGroup, TTL)
				if err != nil {
					l.t.Fatalf("%s -> %s: parse: %v", p.m.name, o.name, err)
				}
				q = append(q, pending{o, o.n.Advert(l.now, p.m.addr, got)})
			}
		}
	}
}

// run advances the clock to d since t0, ticking each live node at each of
// its deadlines on the way, earliest first.
func (l *link) run(d time.Duration) {
	end := at(d)
	for {
		var next *member
		for _, m := range l.members {
			dl := m.n.NextDeadline()
			if !m.up || dl.IsZero() || dl.After(end) {
				continue
			}
			if next == nil || dl.Before(next.n.NextDeadline()) {
				next = m
			}
		}
		if next == nil {
			break
		}
		if dl := next.n.NextDeadline(); dl.After(l.now) {
			l.now = dl
		}
		l.handle(next, next.n.Tick(l.now))
		if dl := next.n.NextDeadline(); !dl.IsZero() && !dl.After(l.now) && next.up {
			l.t.Fatalf("%s: Tick at %v left its deadline at %v", next.name, l.now.Sub(t0), dl.Sub(t0))
		}
	}
	l.now = end
}

// transitions returns the BecomeMaster/BecomeBackup/BecomeInitialize events.
func (l *link) transitions() []event {
	var out []event
	for _, e := range l.events {
		if _, ok := e.act.(SendAdvert); !ok {
			out = append(out, e)
		}
	}
	return out
}

// sends returns the times m sent an advert with priority p.
func (l *link) sends(name string) []time.Duration {
	var out []time.Duration
	for _, e := range l.events {
		if _, ok := e.act.(SendAdvert); ok && e.node == name {
			out = append(out, e.at)
		}
	}
	return out
}

// becameMaster returns when name last became master, or -1.
func (l *link) becameMaster(name string) time.Duration {
	last := time.Duration(-1)
	for _, e := range l.events {
		if _, ok := e.act.(BecomeMaster); ok && e.node == name {
			last = e.at
		}
	}
	return last
}

func (l *link) wantStates(want ...State) {
	l.t.Helper()
	for i, m := range l.members {
		if got := m.n.State(); got != want[i] {
			l.t.Fatalf("at %v: %s is %v, want %v\nevents:\n%s", l.now.Sub(t0), m.name, got, want[i], l.dump())
		}
	}
}

func (l *link) dump() string {
	var sb strings.Builder
	for _, e := range l.events {
		fmt.Fprintf(&sb, "  %v\n", e)
	}
	return sb.String()
}

func cfg(prio uint8) Config {
	c := Default()
	c.Priority = prio
	return c
}

func TestSkewAndMasterDown(t *testing.T) {
	tests := []struct {
		prio       uint8
		interval   time.Duration
		skew, down time.Duration
	}{
		{100, time.Second, 600 * time.Millisecond, 3600 * time.Millisecond},          // 156*100/256 = 60cs
		{200, time.Second, 210 * time.Millisecond, 3210 * time.Millisecond},          // 56*100/256 = 21cs
		{150, time.Second, 410 * time.Millisecond, 3410 * time.Millisecond},          // 106*100/256 = 41cs
		{255, time.Second, 0, 3 * time.Second},                                       // 1*100/256 = 0cs
		{1, time.Second, 990 * time.Millisecond, 3990 * time.Millisecond},            // 255*100/256 = 99cs
		{100, 100 * time.Millisecond, 60 * time.Millisecond, 360 * time.Millisecond}, // 156*10/256 = 6cs
		{200, 100 * time.Millisecond, 20 * time.Millisecond, 320 * time.Millisecond}, // 56*10/256 = 2cs
		{100, 2 * time.Second, 1210 * time.Millisecond, 7210 * time.Millisecond},     // 156*200/256 = 121cs
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("prio%d/%v", tt.prio, tt.interval), func(t *testing.T) {
			if got := SkewTime(tt.prio, tt.interval); got != tt.skew {
				t.Errorf("SkewTime = %v, want %v", got, tt.skew)
			}
			if got := MasterDownInterval(tt.prio, tt.interval); got != tt.down {
				t.Errorf("MasterDownInterval = %v, want %v", got, tt.down)
			}
		})
	}
}

func TestStateString(t *testing.T) {
	for s, want := range map[State]string{Initialize: "Initialize", Backup: "Backup", Master: "Master", 9: "State(9)"} {
		if got := s.String(); got != want {
			t.Errorf("State(%d).String() = %q, want %q", s, got, want)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	good := cfg(100)
	good.VRID, good.Addr = 1, srcA
	tests := []struct {
		name string
		mod  func(*Config)
		want []string // substrings of the error; none means valid
	}{
		{"default", func(*Config) {}, nil},
		{"zero interval means 1s", func(c *Config) { c.AdvertInterval = 0 }, nil},
		{"vrid 0", func(c *Config) { c.VRID = 0 }, []string{"vrid"}},
		{"priority 0", func(c *Config) { c.Priority = 0 }, []string{"priority"}},
		{"interval 5ms", func(c *Config) { c.AdvertInterval = 5 * time.Millisecond }, []string{"advert_interval"}},
		{"interval 105ms", func(c *Config) { c.AdvertInterval = 105 * time.Millisecond }, []string{"advert_interval"}},
		{"negative delay", func(c *Config) { c.PreemptDelay = -1 }, []string{"preempt_delay"}},
		{"no addr", func(c *Config) { c.Addr = netip.Addr{} }, []string{"addr:"}},
		{"ipv6 vip", func(c *Config) { c.Addrs = []netip.Addr{vip, netip.MustParseAddr("::1")} }, []string{"addrs[1]"}},
		{"every problem", func(c *Config) { c.VRID, c.Priority, c.Addr = 0, 0, netip.Addr{} }, []string{"vrid", "priority", "addr:"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good
			tt.mod(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				if _, err := NewNode(c); err != nil {
					t.Fatalf("NewNode: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("Validate: nil error")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %v, want it to mention %q", err, w)
				}
			}
			if _, err := NewNode(c); err == nil {
				t.Fatal("NewNode accepted an invalid config")
			}
		})
	}
}

// TestStartBackupBoundary drives a lone Node step by step: it becomes master
// at exactly Master_Down_Interval after Start, not a nanosecond earlier.
func TestStartBackupBoundary(t *testing.T) {
	c := cfg(100)
	c.VRID, c.Addr = 1, srcA
	n, err := NewNode(c)
	if err != nil {
		t.Fatal(err)
	}
	if n.State() != Initialize || !n.NextDeadline().IsZero() {
		t.Fatalf("new node: %v, deadline %v", n.State(), n.NextDeadline())
	}
	if got := n.Tick(at(time.Hour)); got != nil {
		t.Fatalf("Tick before Start = %v", got)
	}
	if got, want := n.Start(at(0)), []Action{BecomeBackup{}}; !slices.Equal(got, want) {
		t.Fatalf("Start = %v, want %v", got, want)
	}
	if got := n.Start(at(0)); got != nil {
		t.Fatalf("second Start = %v, want nil", got)
	}
	down := 3600 * time.Millisecond
	if n.State() != Backup || n.NextDeadline() != at(down) {
		t.Fatalf("after Start: %v, deadline %v, want Backup, %v", n.State(), n.NextDeadline(), at(down))
	}
	if got := n.Tick(at(down - time.Nanosecond)); got != nil || n.State() != Backup {
		t.Fatalf("Tick 1ns before Master_Down_Interval = %v, state %v", got, n.State())
	}
	if got, want := n.Tick(at(down)), []Action{SendAdvert{100}, BecomeMaster{}}; !slices.Equal(got, want) {
		t.Fatalf("Tick at Master_Down_Interval = %v, want %v", got, want)
	}
	if n.State() != Master || n.NextDeadline() != at(down+time.Second) {
		t.Fatalf("master: %v, deadline %v", n.State(), n.NextDeadline())
	}
	if got := n.Tick(at(down + time.Second - 1)); got != nil {
		t.Fatalf("Tick before Adver_Timer = %v", got)
	}
	if got, want := n.Tick(at(down+time.Second)), []Action{SendAdvert{100}}; !slices.Equal(got, want) {
		t.Fatalf("Tick at Adver_Timer = %v, want %v", got, want)
	}
	if got, want := n.Shutdown(at(down+time.Second)), []Action{SendAdvert{0}, BecomeInitialize{}}; !slices.Equal(got, want) {
		t.Fatalf("Shutdown = %v, want %v", got, want)
	}
	if n.State() != Initialize || !n.NextDeadline().IsZero() {
		t.Fatalf("after Shutdown: %v, deadline %v", n.State(), n.NextDeadline())
	}
	if got := n.Shutdown(at(down + 2*time.Second)); got != nil {
		t.Fatalf("second Shutdown = %v", got)
	}
}

func TestOwnerStartsAsMaster(t *testing.T) {
	c := cfg(OwnerPriority)
	c.VRID, c.Addr = 1, srcA
	n, err := NewNode(c)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := n.Start(at(0)), []Action{SendAdvert{255}, BecomeMaster{}}; !slices.Equal(got, want) {
		t.Fatalf("Start = %v, want %v", got, want)
	}
	if n.NextDeadline() != at(time.Second) {
		t.Fatalf("deadline %v", n.NextDeadline())
	}
	if _, err := n.SetPriority(at(0), 100); err == nil {
		t.Fatal("SetPriority on the owner succeeded")
	}
}

func TestElection(t *testing.T) {
	l := newLink(t)
	a := l.add("a", "198.18.6.1", cfg(200))
	b := l.add("b", "198.18.6.2", cfg(100))
	c := l.add("c", "198.18.6.3", cfg(150))
	l.start(a)
	l.start(b)
	l.start(c)
	l.wantStates(Backup, Backup, Backup)
	l.run(3210*time.Millisecond - 1)
	l.wantStates(Backup, Backup, Backup)
	l.run(3210 * time.Millisecond) // a's Master_Down_Interval, the shortest
	l.wantStates(Master, Backup, Backup)
	l.run(30 * time.Second)
	l.wantStates(Master, Backup, Backup)
	if got := l.becameMaster("a"); got != 3210*time.Millisecond {
		t.Fatalf("a became master at %v", got)
	}
	if got := len(l.sends("a")); got != 27 { // 3.21s, 4.21s, ... 29.21s
		t.Fatalf("a sent %d adverts in 30s, want 27", got)
	}
	if l.sends("b") != nil || l.sends("c") != nil {
		t.Fatalf("a backup advertised:\n%s", l.dump())
	}
}

func TestFailoverOnSilence(t *testing.T) {
	l := newLink(t)
	a := l.add("a", "198.18.6.1", cfg(200))
	b := l.add("b", "198.18.6.2", cfg(100))
	l.start(a)
	l.start(b)
	l.run(10 * time.Second)
	l.wantStates(Master, Backup)
	last := l.sends("a")[len(l.sends("a"))-1] // 9.21s
	l.crash(a)
	down := last + 3600*time.Millisecond // b's Master_Down_Interval
	l.run(down - time.Nanosecond)
	if b.n.State() != Backup {
		t.Fatalf("b took over before Master_Down_Interval:\n%s", l.dump())
	}
	l.run(down)
	if b.n.State() != Master || l.becameMaster("b") != down {
		t.Fatalf("b: %v, became master at %v, want %v", b.n.State(), l.becameMaster("b"), down)
	}
}

func TestShutdownSkew(t *testing.T) {
	l := newLink(t)
	a := l.add("a", "198.18.6.1", cfg(200))
	b := l.add("b", "198.18.6.2", cfg(100))
	l.start(a)
	l.start(b)
	l.run(5 * time.Second)
	l.shutdown(a)
	if got := l.events[len(l.events)-2]; got.act != (SendAdvert{0}) || got.node != "a" {
		t.Fatalf("shutdown sent %v", got)
	}
	l.wantStates(Initialize, Backup)
	skew := 600 * time.Millisecond // b's Skew_Time
	if got := b.n.NextDeadline(); got != at(5*time.Second+skew) {
		t.Fatalf("b's Master_Down_Timer = %v, want %v", got.Sub(t0), 5*time.Second+skew)
	}
	l.run(5*time.Second + skew - 1)
	l.wantStates(Initialize, Backup)
	l.run(5*time.Second + skew)
	l.wantStates(Initialize, Master)

	// a comes back with the higher priority and takes over again.
	l.start(a)
	l.run(20 * time.Second)
	l.wantStates(Master, Backup)
}

func TestMasterAnswersPriorityZero(t *testing.T) {
	c := cfg(100)
	c.VRID, c.Addr = 1, srcA
	n, _ := NewNode(c)
	n.Start(at(0))
	n.Tick(at(3600 * time.Millisecond))
	peer := netip.MustParseAddr("198.18.6.9")
	got := n.Advert(at(4*time.Second), peer, Advert{VRID: 1, Priority: 0, MaxAdvertInterval: time.Second})
	if want := []Action{SendAdvert{100}}; !slices.Equal(got, want) || n.NextDeadline() != at(5*time.Second) {
		t.Fatalf("master got priority 0: %v, deadline %v", got, n.NextDeadline().Sub(t0))
	}
	// Other VRID and our own address are ignored.
	if got := n.Advert(at(4*time.Second), peer, Advert{VRID: 2, Priority: 250, MaxAdvertInterval: time.Second}); got != nil || n.State() != Master {
		t.Fatalf("other VRID: %v, %v", got, n.State())
	}
	if got := n.Advert(at(4*time.Second), srcA, Advert{VRID: 1, Priority: 250, MaxAdvertInterval: time.Second}); got != nil || n.State() != Master {
		t.Fatalf("own address: %v, %v", got, n.State())
	}
	// A lower priority is discarded.
	if got := n.Advert(at(4*time.Second), peer, Advert{VRID: 1, Priority: 99, MaxAdvertInterval: time.Second}); got != nil || n.State() != Master {
		t.Fatalf("lower priority: %v, %v", got, n.State())
	}
}

// preemptSetup starts b (100) alone so it is master, then starts a (200)
// with cfgA at 10s.
func preemptSetup(t *testing.T, cfgA Config) (*link, *member, *member) {
	l := newLink(t)
	a := l.add("a", "198.18.6.1", cfgA)
	b := l.add("b", "198.18.6.2", cfg(100))
	l.start(b)
	l.run(10 * time.Second) // b master since 3.6s, adverts at 3.6s, 4.6s, ... 9.6s
	l.wantStates(Initialize, Master)
	l.start(a)
	return l, a, b
}

func TestPreemption(t *testing.T) {
	l, a, _ := preemptSetup(t, cfg(200))
	// a discards b's lower adverts and takes over on its own timer.
	want := 10*time.Second + 3210*time.Millisecond
	l.run(want - 1)
	l.wantStates(Backup, Master)
	l.run(want)
	l.wantStates(Master, Backup)
	if got := l.becameMaster("a"); got != want {
		t.Fatalf("a became master at %v, want %v", got, want)
	}
	l.run(60 * time.Second)
	l.wantStates(Master, Backup)
	_ = a
}

func TestNoPreemption(t *testing.T) {
	c := cfg(200)
	c.Preempt = false
	l, a, b := preemptSetup(t, c)
	l.run(60 * time.Second)
	l.wantStates(Backup, Master)
	// a has learned the master's interval and is waiting on it.
	if got, want := a.n.NextDeadline(), at(59600*time.Millisecond+3210*time.Millisecond); got != want {
		t.Fatalf("a's Master_Down_Timer = %v, want %v", got.Sub(t0), want.Sub(t0))
	}
	// When b fails, a takes over.
	l.crash(b)
	l.run(59600*time.Millisecond + 3210*time.Millisecond)
	l.wantStates(Master, Master)
}

func TestPreemptDelay(t *testing.T) {
	c := cfg(200)
	c.PreemptDelay = 5 * time.Second
	l, _, _ := preemptSetup(t, c)
	// a first sees b at 10.6s; adverts before 15.6s are accepted, the last
	// at 14.6s; b's advert at 15.6s is discarded, so a's Master_Down_Timer
	// runs out at 14.6s + 3.21s.
	want := 14600*time.Millisecond + 3210*time.Millisecond
	l.run(want - 1)
	l.wantStates(Backup, Master)
	l.run(want)
	l.wantStates(Master, Backup)
	if got := l.becameMaster("a"); got != want {
		t.Fatalf("a became master at %v, want %v", got, want)
	}
}

func TestOwnerPreemptsEvenWithPreemptOff(t *testing.T) {
	c := cfg(OwnerPriority)
	c.Preempt = false
	l, _, _ := preemptSetup(t, c)
	l.wantStates(Master, Backup) // straight to master; b yields to 255
	if got := l.becameMaster("a"); got != 10*time.Second {
		t.Fatalf("owner became master at %v", got)
	}
}

// TestTieBreak heals a partition in which both routers of equal priority
// became master: the one with the higher primary address stays master.
func TestTieBreak(t *testing.T) {
	l := newLink(t)
	a := l.add("a", "198.18.6.1", cfg(100))
	b := l.add("b", "198.18.6.2", cfg(100))
	l.cut = true
	l.start(a)
	l.start(b)
	l.run(5 * time.Second)
	l.wantStates(Master, Master)
	l.cut = false
	l.run(5*time.Second + 3600*time.Millisecond) // next adverts at 4.6s+1s
	l.wantStates(Backup, Master)
	l.run(30 * time.Second)
	l.wantStates(Backup, Master)

	// Without a partition the first to time out wins and the other, seeing
	// an equal priority, stays backup whatever its address.
	l2 := newLink(t)
	l2.add("a", "198.18.6.1", cfg(100))
	b2 := l2.add("b", "198.18.6.2", cfg(100))
	l2.start(l2.members[0])
	l2.run(time.Second)
	l2.start(b2)
	l2.run(30 * time.Second)
	l2.wantStates(Master, Backup)
	_, _ = a, b
}

func TestTrackingLowersPriority(t *testing.T) {
	l := newLink(t)
	a := l.add("a", "198.18.6.1", cfg(200))
	b := l.add("b", "198.18.6.2", cfg(150))
	l.start(a)
	l.start(b)
	l.run(10 * time.Second) // a master; adverts at 3.21s ... 9.21s
	l.wantStates(Master, Backup)
	l.now = at(9500 * time.Millisecond)
	l.setPriority(a, 100)
	if got := l.events[len(l.events)-1]; got.act != (SendAdvert{100}) || got.at != 9500*time.Millisecond {
		t.Fatalf("SetPriority sent %v", got)
	}
	// b discards a's adverts from now on and times out from the last one
	// it accepted, at 9.21s.
	want := 9210*time.Millisecond + 3410*time.Millisecond
	l.run(want - 1)
	l.wantStates(Master, Backup)
	l.run(want)
	l.wantStates(Backup, Master)

	// Priority restored: a (200, preempting) discards b's adverts from now
	// on and times out on the Master_Down_Timer it set from b's advert at
	// 12.62s, when its priority was still 100.
	l.setPriority(a, 200)
	l.run(want + 3600*time.Millisecond - 1)
	l.wantStates(Backup, Master)
	l.run(want + 3600*time.Millisecond)
	l.wantStates(Master, Backup)

	for _, p := range []uint8{0, 255} {
		if _, err := a.n.SetPriority(l.now, p); err == nil {
			t.Errorf("SetPriority(%d) succeeded", p)
		}
	}
	if acts, err := a.n.SetPriority(l.now, 200); acts != nil || err != nil {
		t.Errorf("SetPriority to the same value = %v, %v", acts, err)
	}
}

func TestFastInterval(t *testing.T) {
	fast := func(p uint8) Config {
		c := cfg(p)
		c.AdvertInterval = 100 * time.Millisecond
		return c
	}
	l := newLink(t)
	a := l.add("a", "198.18.6.1", fast(200))
	b := l.add("b", "198.18.6.2", fast(100))
	c := l.add("c", "198.18.6.3", fast(150))
	l.start(a)
	l.start(b)
	l.start(c)
	l.run(319 * time.Millisecond)
	l.wantStates(Backup, Backup, Backup)
	l.run(320 * time.Millisecond) // 300ms + Skew_Time 20ms
	l.wantStates(Master, Backup, Backup)
	l.run(1 * time.Second)
	sends := l.sends("a")
	for i := 1; i < len(sends); i++ {
		if d := sends[i] - sends[i-1]; d != 100*time.Millisecond {
			t.Fatalf("adverts %v apart: %v", d, sends)
		}
	}
	if b.n.MasterAdverInterval() != 100*time.Millisecond {
		t.Fatalf("b learned %v", b.n.MasterAdverInterval())
	}
	last := sends[len(sends)-1] // 920ms
	l.crash(a)
	// c (150) times out first: 300ms + 106*10/256 = 4cs.
	l.run(last + 340*time.Millisecond - 1)
	l.wantStates(Master, Backup, Backup)
	l.run(last + 340*time.Millisecond)
	l.wantStates(Master, Backup, Master)
	l.run(5 * time.Second)
	l.wantStates(Master, Backup, Master)
	if got := l.becameMaster("b"); got != -1 {
		t.Fatalf("b became master at %v", got)
	}
}

// TestLearnsMasterInterval: a backup configured for 1s follows a master
// advertising every 2s and times out on the master's interval.
func TestLearnsMasterInterval(t *testing.T) {
	slow := cfg(200)
	slow.AdvertInterval = 2 * time.Second
	l := newLink(t)
	a := l.add("a", "198.18.6.1", slow)
	b := l.add("b", "198.18.6.2", cfg(100))
	// a: 6s + 56*200/256 = 43cs -> 6.43s. b would time out at 3.6s on its
	// own interval, so start b once a is master.
	l.start(a)
	l.run(6430 * time.Millisecond)
	l.start(b)
	l.wantStates(Master, Backup)
	l.run(6430*time.Millisecond + 2*time.Second) // a advertises; b hears it
	if got := b.n.MasterAdverInterval(); got != 2*time.Second {
		t.Fatalf("b learned %v", got)
	}
	if got, want := b.n.NextDeadline(), at(8430*time.Millisecond+7210*time.Millisecond); got != want {
		t.Fatalf("b's Master_Down_Timer = %v, want %v", got.Sub(t0), want.Sub(t0))
	}
	l.run(60 * time.Second)
	l.wantStates(Master, Backup)
	if got := l.becameMaster("b"); got != -1 {
		t.Fatalf("b became master at %v", got)
	}
}

func TestTickIdleAllocs(t *testing.T) {
	c := cfg(100)
	c.VRID, c.Addr = 1, srcA
	n, _ := NewNode(c)
	n.Start(at(0))
	now := at(time.Second)
	if got := testing.AllocsPerRun(100, func() { n.Tick(now) }); got != 0 {
		t.Fatalf("idle Tick allocates %v", got)
	}
	adv := Advert{VRID: 1, Priority: 150, MaxAdvertInterval: time.Second}
	from := netip.MustParseAddr("198.18.6.9")
	if got := testing.AllocsPerRun(100, func() { n.Advert(now, from, adv) }); got != 0 {
		t.Fatalf("backup Advert allocates %v", got)
	}
}
