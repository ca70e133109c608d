package vrrp

import (
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/internal/header"
)

// memLink is an in-memory VRRP segment for Routers: every advertisement a
// port sends is marshalled, wrapped in an IPv4 header with TTL 255 as the
// kernel would, and queued at every other port, so the Router's whole
// receive path (header split, checks, dispatch) runs as it does on a
// socket. Safe for concurrent use.
type memLink struct {
	mu    sync.Mutex
	ports []*memPort
}

// memPort is one Router's attachment to a memLink; it implements
// transport.
type memPort struct {
	link   *memLink
	addr   netip.Addr
	in     chan []byte
	closed chan struct{}
	once   sync.Once
}

func (l *memLink) port(addr netip.Addr) *memPort {
	p := &memPort{link: l, addr: addr, in: make(chan []byte, 256), closed: make(chan struct{})}
	l.mu.Lock()
	l.ports = append(l.ports, p)
	l.mu.Unlock()
	return p
}

func (p *memPort) Read(b []byte) (int, error) {
	select {
	case pkt := <-p.in:
		return copy(b, pkt), nil
	case <-p.closed:
		return 0, net.ErrClosed
	}
}

func (p *memPort) Send(a *Advert) error {
	select {
	case <-p.closed:
		return net.ErrClosed
	default:
	}
	payload, err := a.Marshal(p.addr, MulticastGroup)
	if err != nil {
		return err
	}
	pkt := ipv4Packet(p.addr, MulticastGroup, TTL, payload)
	p.link.mu.Lock()
	defer p.link.mu.Unlock()
	for _, q := range p.link.ports {
		if q != p {
			q.inject(pkt)
		}
	}
	return nil
}

// inject queues pkt (a whole IPv4 packet) for the port's reader; a closed
// or full port drops it, as a socket would.
func (p *memPort) inject(pkt []byte) {
	select {
	case <-p.closed:
	case p.in <- pkt:
	default:
	}
}

func (p *memPort) Close() error {
	p.once.Do(func() { close(p.closed) })
	return nil
}

// ipv4Packet wraps payload in a 20-byte IPv4 header for protocol 112.
func ipv4Packet(src, dst netip.Addr, ttl uint8, payload []byte) []byte {
	pkt := make([]byte, header.IPv4MinimumSize+len(payload))
	header.IPv4(pkt).Encode(&header.IPv4Fields{
		TotalLen: uint16(len(pkt)),
		TTL:      ttl,
		Protocol: IPProtocol,
		Src:      src.As4(),
		Dst:      dst.As4(),
	})
	copy(pkt[header.IPv4MinimumSize:], payload)
	return pkt
}

// memARP records gratuitous ARP announcements.
type memARP struct {
	mu   sync.Mutex
	sent []garpSent
}

type garpSent struct {
	at   time.Time
	addr netip.Addr
}

func (a *memARP) Announce(addr netip.Addr) error {
	a.mu.Lock()
	a.sent = append(a.sent, garpSent{time.Now(), addr})
	a.mu.Unlock()
	return nil
}

func (a *memARP) Close() error { return nil }

func (a *memARP) list() []garpSent {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]garpSent(nil), a.sent...)
}

// transitionEvent is one call of a Router's transition callback.
type transitionEvent struct {
	vrid     uint8
	from, to State
	at       time.Time
}

func (e transitionEvent) String() string {
	return fmt.Sprintf("%s vrid %d %v->%v", e.at.Format("15:04:05.000"), e.vrid, e.from, e.to)
}

// recorder collects a Router's transitions.
type recorder struct {
	mu     sync.Mutex
	events []transitionEvent
	ch     chan transitionEvent
}

func newRecorder() *recorder { return &recorder{ch: make(chan transitionEvent, 64)} }

func (rc *recorder) callback(vrid uint8, from, to State) {
	e := transitionEvent{vrid, from, to, time.Now()}
	rc.mu.Lock()
	rc.events = append(rc.events, e)
	rc.mu.Unlock()
	select {
	case rc.ch <- e:
	default:
	}
}

func (rc *recorder) all() []transitionEvent {
	rc.mu.Lock()
	defer rc.mu.Unlock()
	return append([]transitionEvent(nil), rc.events...)
}

// drain forgets transitions not yet waited for: call it before the action
// whose effect the next waitFor is to see, so that an earlier event (a flap
// on a starved machine) cannot stand in for it.
func (rc *recorder) drain() {
	for {
		select {
		case <-rc.ch:
		default:
			return
		}
	}
}

// waitFor returns the first transition of vrid to state not yet waited
// for, failing the test after timeout.
func (rc *recorder) waitFor(t *testing.T, vrid uint8, to State, timeout time.Duration) transitionEvent {
	t.Helper()
	deadline := time.After(timeout)
	for {
		select {
		case e := <-rc.ch:
			if e.vrid == vrid && e.to == to {
				return e
			}
		case <-deadline:
			t.Fatalf("vrid %d: no transition to %v within %v; transitions: %v", vrid, to, timeout, rc.all())
			return transitionEvent{}
		}
	}
}

// waitState polls r's snapshot until group vrid is in state, failing after
// timeout.
func waitState(t *testing.T, r *Router, vrid uint8, want State, timeout time.Duration) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		g := groupOf(t, r.Snapshot(), vrid)
		if g.State == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s vrid %d: state %v after %v, want %v (%+v)", r.addr, vrid, g.State, timeout, want, g)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func groupOf(t *testing.T, s Snapshot, vrid uint8) GroupSnapshot {
	t.Helper()
	for _, g := range s.Groups {
		if g.VRID == vrid {
			return g
		}
	}
	t.Fatalf("no group %d in snapshot", vrid)
	return GroupSnapshot{}
}

// memRouter is a Router on a memLink, with its fakes.
type memRouter struct {
	*Router
	port *memPort
	arp  *memARP
	rec  *recorder
}

// testLogger discards unless -v, where it writes through t.Log.
func testLogger(t *testing.T) *slog.Logger {
	if !testing.Verbose() {
		return slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return slog.New(slog.NewTextHandler(tWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tWriter struct{ t *testing.T }

func (w tWriter) Write(b []byte) (int, error) { w.t.Log(string(b[:len(b)-1])); return len(b), nil }

// newMemRouter builds a Router at addr on link; it is stopped by cleanup.
func newMemRouter(t *testing.T, link *memLink, addr string, cfg RouterConfig) *memRouter {
	t.Helper()
	if cfg.Interface == "" {
		cfg.Interface = "mem0"
	}
	cfg.Addr = netip.MustParseAddr(addr)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	m := &memRouter{port: link.port(cfg.Addr), arp: new(memARP), rec: newRecorder()}
	r, err := newRouter(cfg, testLogger(t), m.rec.callback, m.port, m.arp, nil)
	if err != nil {
		t.Fatal(err)
	}
	m.Router = r
	t.Cleanup(r.crash)
	return m
}

// fastGroup is a group with a 100ms interval, the shortest the brief asks
// to fail over with, and VIP 198.18.5.100.
func fastGroup(vrid, prio uint8) GroupConfig {
	c := Default()
	c.VRID, c.Priority, c.AdvertInterval = vrid, prio, 100*time.Millisecond
	c.Addrs = []netip.Addr{netip.MustParseAddr("198.18.5.100")}
	return GroupConfig{Node: c}
}

// slowGroup is fastGroup at a 300ms interval, for tests that tell a
// priority-0 handover (Skew_Time: 60ms at priority 200) from a timeout
// (Master_Down_Interval: 960ms) on a loaded machine.
func slowGroup(vrid, prio uint8) GroupConfig {
	g := fastGroup(vrid, prio)
	g.Node.AdvertInterval = 300 * time.Millisecond
	return g
}

func routerConfig(groups ...GroupConfig) RouterConfig {
	c := DefaultRouterConfig()
	c.Groups = groups
	c.GARPInterval = 50 * time.Millisecond
	return c
}
