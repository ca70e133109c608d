package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/appliance"
	"github.com/culvert-lb/culvert/appliance/control"
	"github.com/culvert-lb/culvert/appliance/health"
	"github.com/culvert-lb/culvert/appliance/vrrp"
	"github.com/culvert-lb/culvert/bench/lab"
	"github.com/culvert-lb/culvert/internal/testenv"
)

// The HA pair on the namespace lab: two appliances on the server segment
// (A at 198.18.0.2, priority 150; B at 198.18.0.3, priority 100), one VRRP
// group with a 100 ms advertisement interval owning the VIP and the SNAT
// addresses, connection sync between them; the router and the backends
// reach the VIP and SNAT ranges on-link, so ARP (moved by the master's
// gratuitous ARP) decides who gets the traffic.

const (
	haAdvert   = 100 * time.Millisecond
	haSyncPort = 8848
	haKey      = "6375766572742d68612d746573742d6b6579"
)

// haNode is one appliance of the pair.
type haNode struct {
	name string
	host *lab.Host
	dir  string
	proc *os.Process // B's daemon; A's is the labRun's
	log  *testenv.Buffer
}

// haPair is a running pair on a fresh lab.
type haPair struct {
	t     *testing.T
	run   *labRun // the lab, A's daemon (run.daemon) and the decapsulators
	a, b  *haNode
	specB appliance.Spec
	exe   string
}

// haSpec adds the ha section for the node at self, peer at peer.
func haSpec(s *appliance.Spec, self, peer netip.Addr, prio uint8, nopreempt bool) {
	s.HA = &appliance.HASpec{
		Groups: []appliance.VRRPGroupSpec{{Name: "vi1", VirtualRouterID: 51, Priority: prio, AdvertInt: haAdvert, NoPreempt: nopreempt}},
		Sync:   &appliance.SyncSpec{Listen: netip.AddrPortFrom(self, haSyncPort), Peer: netip.AddrPortFrom(peer, haSyncPort), Key: haKey},
	}
}

// startPair brings the lab up with A running and master, then starts B
// and waits for it to be backup with a complete resync.
func startPair(t *testing.T, mode string, nopreempt bool) *haPair {
	t.Helper()
	return startPairWith(t, mode, func(l *lab.Lab, a, b *appliance.Spec) {
		haSpec(a, l.Appliance.Addr, l.Peer.Addr, 150, nopreempt)
		haSpec(b, l.Peer.Addr, l.Appliance.Addr, 100, nopreempt)
	})
}

// startPairWith is startPair with the ha sections (and anything else) of
// A's and B's configurations set by edit.
func startPairWith(t *testing.T, mode string, edit func(l *lab.Lab, a, b *appliance.Spec)) *haPair {
	t.Helper()
	testenv.RequireRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	p := &haPair{t: t, exe: exe}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	r, err := startLabWith(ctx, mode, lab.Options{Pair: true}, exe, []string{"CULVERT_TEST_AS_MAIN=1"}, func(l *lab.Lab, s *appliance.Spec) error {
		p.specB = *s
		edit(l, s, &p.specB)
		p.specB.Interfaces = []appliance.InterfaceSpec{{Name: l.Peer.Links[0].Name, Queues: l.Peer.Links[0].Queues}}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(r.stop)
	p.run = r
	p.a = &haNode{name: "A", host: r.lab.Appliance, dir: r.dir}
	p.b = &haNode{name: "B", host: r.lab.Peer, log: &testenv.Buffer{}}
	p.b.dir = t.TempDir()
	cfg, err := appliance.Marshal(&p.specB)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(p.b.dir, "culvert.yaml"), cfg, 0o644); err != nil {
		t.Fatal(err)
	}
	p.waitState(p.a, vrrp.Master, 5*time.Second)
	p.startB()
	p.waitState(p.b, vrrp.Backup, 5*time.Second)
	p.waitSynced(p.b, 5*time.Second)
	return p
}

// startB starts (or restarts) B's daemon.
func (p *haPair) startB() {
	p.t.Helper()
	c := p.b.host.Command(p.exe, "run", "--config", filepath.Join(p.b.dir, "culvert.yaml"), "--control", filepath.Join(p.b.dir, "culvert.sock"))
	c.Env = append(os.Environ(), "CULVERT_TEST_AS_MAIN=1")
	c.Stdout, c.Stderr = p.b.log, p.b.log
	if err := c.Start(); err != nil {
		p.t.Fatal(err)
	}
	p.b.proc = c.Process
	p.t.Cleanup(func() { c.Process.Kill(); c.Wait() })
}

// restartA starts A's daemon again after it was killed.
func (p *haPair) restartA() {
	p.t.Helper()
	r := p.run
	c := r.lab.Appliance.Command(p.exe, "run", "--config", filepath.Join(r.dir, "culvert.yaml"), "--control", filepath.Join(r.dir, "culvert.sock"))
	c.Env = append(os.Environ(), "CULVERT_TEST_AS_MAIN=1")
	c.Stdout, c.Stderr = r.logBuf, r.logBuf
	if err := c.Start(); err != nil {
		p.t.Fatal(err)
	}
	r.daemon, r.stopped = c, false
}

func (p *haPair) show(n *haNode, what string, v any) error {
	b, err := control.NewClient(filepath.Join(n.dir, "culvert.sock")).Do("GET", "/v1/"+what, nil)
	if err != nil {
		return err
	}
	return json.Unmarshal(b, v)
}

// showBoth reads what from A into a and from B into b, or fails the test.
func (p *haPair) showBoth(what string, a, b any) {
	p.t.Helper()
	for _, x := range []struct {
		n *haNode
		v any
	}{{p.a, a}, {p.b, b}} {
		if err := p.show(x.n, what, x.v); err != nil {
			p.t.Fatalf("%s: show %s: %v", x.n.name, what, err)
		}
	}
}

func (p *haPair) state(n *haNode) string { return p.groupState(n, 0) }

// groupState is the state of n's group g (by position).
func (p *haPair) groupState(n *haNode, g int) string {
	var v VRRPView
	if err := p.show(n, "vrrp", &v); err != nil || len(v.Groups) <= g {
		return "unreachable"
	}
	return v.Groups[g].State
}

func (p *haPair) waitState(n *haNode, want vrrp.State, within time.Duration) {
	p.t.Helper()
	p.waitGroup(n, 0, want, within)
}

func (p *haPair) waitGroup(n *haNode, g int, want vrrp.State, within time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		got := p.groupState(n, g)
		if got == want.String() {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: vrrp state %s after %v, want %v\nA log:\n%s\nB log:\n%s", n.name, got, within, want, p.run.logBuf, p.b.log)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (p *haPair) waitSynced(n *haNode, within time.Duration) {
	p.t.Helper()
	deadline := time.Now().Add(within)
	for {
		var v SyncView
		if err := p.show(n, "sync", &v); err == nil && v.Synced {
			return
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: not synced after %v", n.name, within)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// haConns is a set of long-lived TCP connections through the VIP, each
// making one HTTP/1.1 keep-alive request every period, and one UDP
// stream of a datagram every period; they record failures and the
// longest gap between successes.
type haConns struct {
	once     sync.Once // closes stop
	mu       sync.Mutex
	ok, fail int
	errs     []string
	tcpGap   time.Duration
	udpGap   time.Duration
	udpSent  int
	udpOK    int
	stop     chan struct{}
	wg       sync.WaitGroup
	backends map[string]int
}

func (c *haConns) note(err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.fail++
	if len(c.errs) < 5 {
		c.errs = append(c.errs, err.Error())
	}
}

// openConns dials n connections through the VIP and starts their loops.
func openConns(t *testing.T, l *lab.Lab, n int, period time.Duration) *haConns {
	t.Helper()
	return openConnsTo(t, l, l.VIP, n, period)
}

// openConnsTo is openConns to another VIP of the lab.
func openConnsTo(t *testing.T, l *lab.Lab, vip netip.Addr, n int, period time.Duration) *haConns {
	t.Helper()
	c := &haConns{stop: make(chan struct{}), backends: map[string]int{}}
	for i := 0; i < n; i++ {
		conn, err := l.Client.Dial("tcp4", net.JoinHostPort(vip.String(), "80"))
		if err != nil {
			t.Fatalf("dial %d: %v", i, err)
		}
		c.wg.Add(1)
		go c.tcpLoop(conn, vip.String(), period)
	}
	u, err := l.Client.Dial("udp4", net.JoinHostPort(vip.String(), "7"))
	if err != nil {
		t.Fatal(err)
	}
	c.wg.Add(2)
	go c.udpSend(u, period/4)
	go c.udpRecv(u)
	return c
}

func (c *haConns) tcpLoop(conn net.Conn, host string, period time.Duration) {
	defer c.wg.Done()
	defer conn.Close()
	br := bufio.NewReader(conn)
	last := time.Now()
	t := time.NewTicker(period)
	defer t.Stop()
	for {
		select {
		case <-c.stop:
			return
		case <-t.C:
		}
		conn.SetDeadline(time.Now().Add(5 * time.Second))
		if _, err := fmt.Fprintf(conn, "GET / HTTP/1.1\r\nHost: %s\r\n\r\n", host); err != nil {
			c.note(err)
			return
		}
		resp, err := http.ReadResponse(br, nil)
		if err != nil {
			c.note(err)
			return
		}
		body := make([]byte, 64)
		n, _ := resp.Body.Read(body)
		resp.Body.Close()
		now := time.Now()
		c.mu.Lock()
		c.ok++
		c.backends[strings.TrimSpace(string(body[:n]))]++
		c.tcpGap = max(c.tcpGap, now.Sub(last))
		c.mu.Unlock()
		last = now
	}
}

func (c *haConns) udpSend(u net.Conn, period time.Duration) {
	defer c.wg.Done()
	t := time.NewTicker(period)
	defer t.Stop()
	for i := 0; ; i++ {
		select {
		case <-c.stop:
			u.SetReadDeadline(time.Now())
			return
		case <-t.C:
		}
		u.Write([]byte(fmt.Sprintf("seq %d", i)))
		c.mu.Lock()
		c.udpSent++
		c.mu.Unlock()
	}
}

func (c *haConns) udpRecv(u net.Conn) {
	defer c.wg.Done()
	buf := make([]byte, 2048)
	var last time.Time
	for {
		if _, err := u.Read(buf); err != nil {
			return
		}
		now := time.Now()
		c.mu.Lock()
		if c.udpOK > 0 {
			c.udpGap = max(c.udpGap, now.Sub(last))
		}
		c.udpOK++
		c.mu.Unlock()
		last = now
	}
}

// close stops the loops and waits for them; again, it does nothing.
func (c *haConns) close() {
	c.once.Do(func() { close(c.stop) })
	c.wg.Wait()
}

// resetGaps starts measuring gaps afresh.
func (c *haConns) resetGaps() {
	c.mu.Lock()
	c.tcpGap, c.udpGap = 0, 0
	c.mu.Unlock()
}

func (c *haConns) report() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return fmt.Sprintf("tcp requests ok %d failed %d (longest gap %v), udp %d/%d answered (longest gap %v), backends %v, errors %v",
		c.ok, c.fail, c.tcpGap.Round(time.Millisecond), c.udpOK, c.udpSent, c.udpGap.Round(time.Millisecond), c.backends, c.errs)
}

// failoverBudget is the RFC's Master_Down_Interval for the backup's
// priority plus 200 ms, plus the period of the paced stream (a gap is
// measured between two successes, one period apart at best).
func failoverBudget(period time.Duration) time.Duration {
	return vrrp.MasterDownInterval(100, haAdvert) + 200*time.Millisecond + period
}

// TestLabHAFailover: in each mode, long-lived TCP connections and a UDP
// stream through the VIP survive kill -9 of the master's daemon with no
// failed request, the backup forwarding within the budget; then the old
// master returns, resyncs, preempts, and the connections (including ones
// opened while the backup was master) carry on.
func TestLabHAFailover(t *testing.T) {
	for _, mode := range []string{"nat", "dsr", "ipip"} {
		t.Run(mode, func(t *testing.T) {
			p := startPair(t, mode, false)
			const period = 50 * time.Millisecond
			conns := openConns(t, p.run.lab, 16, period)
			defer conns.close()
			time.Sleep(time.Second)
			conns.resetGaps()

			// kill -9 the master.
			killed := time.Now()
			p.killA()
			t.Logf("%s: B master %v after kill -9 of A", mode, time.Since(killed).Round(time.Millisecond))
			time.Sleep(2 * time.Second)
			t.Logf("%s: after failover: %s", mode, conns.report())
			conns.mu.Lock()
			fail, tcpGap, udpGap := conns.fail, conns.tcpGap, conns.udpGap
			conns.mu.Unlock()
			budget := failoverBudget(period)
			if fail != 0 {
				t.Errorf("%s: %d requests failed across the failover", mode, fail)
			}
			if tcpGap > budget || udpGap > budget {
				t.Errorf("%s: longest gap tcp %v udp %v, budget %v", mode, tcpGap, udpGap, budget)
			}

			// New connections while B is master, then A returns.
			more := openConns(t, p.run.lab, 8, period)
			defer more.close()
			time.Sleep(500 * time.Millisecond)
			conns.resetGaps()
			more.resetGaps()
			p.restartA()
			p.waitState(p.a, vrrp.Master, 10*time.Second)
			p.waitState(p.b, vrrp.Backup, 2*time.Second)
			time.Sleep(2 * time.Second)
			t.Logf("%s: after A returned: old %s; new %s", mode, conns.report(), more.report())
			for _, c := range []*haConns{conns, more} {
				c.mu.Lock()
				if c.fail != 0 {
					t.Errorf("%s: %d requests failed across A's return: %v", mode, c.fail, c.errs)
				}
				c.mu.Unlock()
			}
		})
	}
}

// setLink brings a host's interface down or up.
func setLink(t *testing.T, h *lab.Host, up bool) {
	t.Helper()
	state := "down"
	if up {
		state = "up"
	}
	if out, err := h.Command("ip", "link", "set", "dev", h.Links[0].Name, state).CombinedOutput(); err != nil {
		t.Fatalf("ip link set %s: %v %s", state, err, out)
	}
}

// TestLabHALinkDown: the master's link going down is a failover like a
// crash (nat: the SNAT mappings come from sync); when the link returns,
// the old master resyncs and preempts, and the connections carry on.
func TestLabHALinkDown(t *testing.T) {
	p := startPair(t, "nat", false)
	const period = 50 * time.Millisecond
	conns := openConns(t, p.run.lab, 16, period)
	defer conns.close()
	time.Sleep(time.Second)
	conns.resetGaps()
	down := time.Now()
	setLink(t, p.a.host, false)
	p.waitState(p.b, vrrp.Master, 3*time.Second)
	t.Logf("B master %v after A's link went down", time.Since(down).Round(time.Millisecond))
	time.Sleep(2 * time.Second)
	t.Logf("after failover: %s", conns.report())
	conns.mu.Lock()
	fail, tcpGap, udpGap := conns.fail, conns.tcpGap, conns.udpGap
	conns.mu.Unlock()
	if budget := failoverBudget(period); fail != 0 || tcpGap > budget || udpGap > budget {
		t.Errorf("%d failed, longest gap tcp %v udp %v, budget %v", fail, tcpGap, udpGap, budget)
	}
	more := openConns(t, p.run.lab, 8, period)
	defer more.close()
	time.Sleep(500 * time.Millisecond)
	setLink(t, p.a.host, true)
	p.waitState(p.a, vrrp.Master, 10*time.Second)
	time.Sleep(2 * time.Second)
	t.Logf("after A's link returned: old %s; new %s", conns.report(), more.report())
	for _, c := range []*haConns{conns, more} {
		c.mu.Lock()
		if c.fail != 0 {
			t.Errorf("%d requests failed across A's return: %v", c.fail, c.errs)
		}
		c.mu.Unlock()
	}
}

// TestLabHANoPreempt: with nopreempt the old master comes back as backup
// and stays backup: no flap, no failed request.
func TestLabHANoPreempt(t *testing.T) {
	p := startPair(t, "nat", true)
	const period = 50 * time.Millisecond
	conns := openConns(t, p.run.lab, 8, period)
	defer conns.close()
	time.Sleep(500 * time.Millisecond)
	p.killA()
	p.restartA()
	p.waitState(p.a, vrrp.Backup, 10*time.Second)
	p.waitSynced(p.a, 5*time.Second)
	// A has priority 150 and a full table: without nopreempt it would
	// take over now. Watch for 2 s.
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		if s := p.state(p.a); s != vrrp.Backup.String() {
			t.Fatalf("A went %s with nopreempt", s)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var v VRRPView
	if err := p.show(p.b, "vrrp", &v); err != nil || v.Groups[0].State != "Master" || v.Groups[0].Transitions != 2 {
		t.Errorf("B: %+v %v (want master after 2 transitions: init->backup->master)", v, err)
	}
	t.Logf("%s", conns.report())
	conns.mu.Lock()
	defer conns.mu.Unlock()
	if conns.fail != 0 {
		t.Errorf("%d requests failed: %v", conns.fail, conns.errs)
	}
}

// TestLabHAHostileInput: forged VRRP adverts (TTL 64, bad checksum, an
// unknown VRID) and sync messages (garbage, a bad header) from another host
// on the segment are counted and change nothing: the master stays master,
// both daemons keep running.
func TestLabHAHostileInput(t *testing.T) {
	p := startPair(t, "nat", false)
	l := p.run.lab
	// VRRP: a raw socket on the router, unicast to each appliance (the
	// router has no multicast route), with TTL 1 or 255.
	err := l.Router.Do(func() error {
		fd, err := syscall.Socket(syscall.AF_INET, syscall.SOCK_RAW, 112)
		if err != nil {
			return err
		}
		defer syscall.Close(fd)
		dsts := []*syscall.SockaddrInet4{{Addr: l.Appliance.Addr.As4()}, {Addr: l.Peer.Addr.As4()}}
		for _, x := range []struct {
			ttl int
			adv []byte
		}{
			{1, []byte{0x31, 51, 254, 1, 0x00, 0x0a, 0, 0, 198, 18, 1, 1}},   // TTL 1, priority 254: would preempt
			{255, []byte{0x31, 51, 254, 1, 0x00, 0x0a, 0, 0, 198, 18, 1, 1}}, // bad checksum (zero)
			{255, []byte{0x31, 99, 254, 1, 0x00, 0x0a, 0, 0, 198, 18, 1, 1}}, // unknown VRID
			{255, []byte{0x21, 51, 254, 1, 0x00, 0x0a, 0, 0, 198, 18, 1, 1}}, // version 2
			{255, []byte{0x31, 51}}, // truncated
		} {
			if err := syscall.SetsockoptInt(fd, syscall.IPPROTO_IP, syscall.IP_TTL, x.ttl); err != nil {
				return fmt.Errorf("ttl %d: %w", x.ttl, err)
			}
			for range 4 {
				for _, dst := range dsts {
					if err := syscall.Sendto(fd, x.adv, 0, dst); err != nil {
						return fmt.Errorf("send %x to %v: %w", x.adv, dst.Addr, err)
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// Sync: garbage, and a message with the magic but no valid body (the
	// wrong-key and replay cases are flowsync's tests), to B's port.
	c, err := l.Router.Dial("udp4", netip.AddrPortFrom(l.Peer.Addr, haSyncPort).String())
	if err != nil {
		t.Fatal(err)
	}
	for range 5 {
		c.Write([]byte("not a sync message"))
		c.Write(append([]byte("CLVS"), make([]byte, 200)...))
	}
	c.Close()
	time.Sleep(500 * time.Millisecond)
	var va, vb VRRPView
	if err := p.show(p.a, "vrrp", &va); err != nil {
		t.Fatal(err)
	}
	if err := p.show(p.b, "vrrp", &vb); err != nil {
		t.Fatal(err)
	}
	var sb SyncView
	if err := p.show(p.b, "sync", &sb); err != nil {
		t.Fatal(err)
	}
	t.Logf("A vrrp %+v\nB vrrp %+v\nB sync rejected %v", va, vb, sb.Rejected)
	if va.Groups[0].State != "Master" || vb.Groups[0].State != "Backup" {
		t.Errorf("states A %s B %s after forged adverts", va.Groups[0].State, vb.Groups[0].State)
	}
	sum := func(v VRRPView) (n uint64) {
		for _, x := range v.Rejected {
			n += x
		}
		for _, g := range v.Groups {
			for _, x := range g.Rejected {
				n += x
			}
		}
		return n
	}
	if sum(va) < 20 || sum(vb) < 20 {
		t.Errorf("rejected adverts: A %d, B %d, want 20 each", sum(va), sum(vb))
	}
	var syncRejects uint64
	for _, n := range sb.Rejected {
		syncRejects += n
	}
	if syncRejects < 10 {
		t.Errorf("B rejected %d sync messages, want 10", syncRejects)
	}
	// Both still serve: the VIP answers.
	if _, err := p.run.get(context.Background(), "/"); err != nil {
		t.Errorf("VIP after hostile input: %v", err)
	}
}

// TestLabHAActiveActive: two VRRP groups with opposite priorities, each
// owning one VIP and one SNAT address: A is master of the first, B of the
// second, each forwarding its own VIP's nat traffic with its own SNAT
// address. Killing A moves its VIP to B with no failed request on either
// VIP; A's return takes its group back.
func TestLabHAActiveActive(t *testing.T) {
	vip2 := netip.MustParseAddr("198.18.1.2")
	snat1, snat2 := netip.MustParseAddr("198.18.2.1"), netip.MustParseAddr("198.18.2.2")
	p := startPairWith(t, "nat", func(l *lab.Lab, a, b *appliance.Spec) {
		for _, s := range []*appliance.Spec{a, b} {
			n := len(s.Services)
			for i := 0; i < n; i++ {
				sv := s.Services[i]
				sv.Name, sv.VIP = sv.Name+"2", vip2
				s.Services = append(s.Services, sv)
			}
		}
		groups := func(p1, p2 uint8) []appliance.VRRPGroupSpec {
			return []appliance.VRRPGroupSpec{
				{Name: "vi1", VirtualRouterID: 51, Priority: p1, AdvertInt: haAdvert, VirtualIPAddress: []netip.Addr{l.VIP}, LocalAddrs: []netip.Addr{snat1}},
				{Name: "vi2", VirtualRouterID: 52, Priority: p2, AdvertInt: haAdvert, VirtualIPAddress: []netip.Addr{vip2}, LocalAddrs: []netip.Addr{snat2}},
			}
		}
		haSpec(a, l.Appliance.Addr, l.Peer.Addr, 150, false)
		haSpec(b, l.Peer.Addr, l.Appliance.Addr, 100, false)
		a.HA.Groups, b.HA.Groups = groups(150, 100), groups(100, 150)
	})
	p.waitGroup(p.b, 1, vrrp.Master, 5*time.Second)
	p.waitGroup(p.a, 1, vrrp.Backup, 2*time.Second)
	const period = 50 * time.Millisecond
	c1 := openConnsTo(t, p.run.lab, p.run.lab.VIP, 8, period)
	defer c1.close()
	c2 := openConnsTo(t, p.run.lab, vip2, 8, period)
	defer c2.close()
	time.Sleep(time.Second)
	// Each box forwards its own VIP: new flows on each, in its stats.
	var sa, sb RunStats
	p.showBoth("stats", &sa, &sb)
	if sa.Dataplane.NewFlows == 0 || sb.Dataplane.NewFlows == 0 {
		t.Errorf("new flows: A %d, B %d: both boxes should be forwarding", sa.Dataplane.NewFlows, sb.Dataplane.NewFlows)
	}
	c1.resetGaps()
	c2.resetGaps()
	p.killA()
	time.Sleep(2 * time.Second)
	t.Logf("after A died: VIP1 %s; VIP2 %s", c1.report(), c2.report())
	p.restartA()
	p.waitGroup(p.a, 0, vrrp.Master, 10*time.Second)
	p.waitGroup(p.a, 1, vrrp.Backup, 2*time.Second)
	time.Sleep(2 * time.Second)
	t.Logf("after A returned: VIP1 %s; VIP2 %s", c1.report(), c2.report())
	for i, c := range []*haConns{c1, c2} {
		c.mu.Lock()
		if c.fail != 0 || c.ok == 0 {
			t.Errorf("VIP%d: %d ok, %d failed: %v", i+1, c.ok, c.fail, c.errs)
		}
		c.mu.Unlock()
	}
}

// TestLabHATrackService: a group that tracks a service whose every
// backend fails its health check lowers its priority by the weight, and
// the peer takes over (keepalived's track_script on the pool).
func TestLabHATrackService(t *testing.T) {
	p := startPairWith(t, "nat", func(l *lab.Lab, a, b *appliance.Spec) {
		haSpec(a, l.Appliance.Addr, l.Peer.Addr, 150, false)
		haSpec(b, l.Peer.Addr, l.Appliance.Addr, 100, false)
		// A checks "echo" with TCP on a port nothing listens on: every
		// backend goes down, and 150 - 100 < 100.
		for i := range a.Services {
			if a.Services[i].Name == "echo" {
				a.Services[i].HealthCheck = &health.Spec{Kind: health.KindTCP, Port: 9, Interval: 200 * time.Millisecond,
					Timeout: 100 * time.Millisecond, Fall: 1, Rise: 1}
			}
		}
		a.HA.Groups[0].TrackService = []appliance.TrackSpec{{Name: "echo", Weight: 100}}
	})
	// startPair waited for A master and B backup; A's checks fail within a
	// second and B takes over.
	p.waitState(p.b, vrrp.Master, 5*time.Second)
	p.waitState(p.a, vrrp.Backup, 2*time.Second)
	// A, now backup, may hold its priority at 1 until its resync from B
	// completes: wait for that to settle.
	var v VRRPView
	for deadline := time.Now().Add(3 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if err := p.show(p.a, "vrrp", &v); err != nil {
			t.Fatal(err)
		}
		if g := v.Groups[0]; g.EffectivePriority == 50 && len(g.Down) > 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("A's group: %+v, want priority 50 with the service down", v.Groups[0])
		}
	}
	// The web service still answers, now through B.
	if _, err := p.run.get(context.Background(), "/"); err != nil {
		t.Errorf("VIP through B: %v", err)
	}
}

// dropSync makes host h drop one in every k sync datagrams it receives,
// at random (nft numgen: the kernel has no netem).
func dropSync(t *testing.T, h *lab.Host, k int) {
	t.Helper()
	c := h.Command("nft", "-f", "-")
	c.Stdin = strings.NewReader(fmt.Sprintf(`table inet culvert_test_loss {
	chain in {
		type filter hook input priority 0;
		udp dport %d numgen random mod %d == 0 counter drop
	}
}
`, haSyncPort, k))
	if out, err := c.CombinedOutput(); err != nil {
		t.Fatalf("nft: %v: %s", err, out)
	}
}

// TestLabHASyncLoss: with one sync datagram in ten dropped each way,
// B still learns every flow A sets up (the lost Updates are asked for
// again and resent), so every connection survives kill -9 of A at once,
// with no wait for the periodic refresh (30 s). Without the Nacks, 40 of
// the 200 failed at one in five dropped.
func TestLabHASyncLoss(t *testing.T) {
	p := startPair(t, "nat", false)
	dropSync(t, p.b.host, 10)
	dropSync(t, p.a.host, 10)
	conns := openConns(t, p.run.lab, 200, 200*time.Millisecond)
	defer conns.close()
	time.Sleep(time.Second)

	var sa, sb SyncView
	p.showBoth("sync", &sa, &sb)
	t.Logf("A sent %d messages; B received %d records, %d messages late, %d lost, sent %d nacks; A resent %d (%d misses)",
		sa.MessagesSent, sb.RecordsReceived, sb.Late, sb.Lost, sb.NacksSent, sa.Resent, sa.ResendMisses)
	if sb.NacksSent == 0 || sa.Resent == 0 || sb.Late == 0 {
		t.Fatalf("no sync message was lost and resent: the test tests nothing")
	}
	p.killA()
	time.Sleep(6 * time.Second) // past the requests' 5 s deadline: a connection B does not know has failed by now
	t.Logf("after failover: %s", conns.report())
	conns.mu.Lock()
	defer conns.mu.Unlock()
	if conns.fail != 0 {
		t.Errorf("%d of 200 connections failed across the failover: B missed their flows", conns.fail)
	}
}

// reloadA rewrites A's configuration file with edit and sends A SIGHUP.
func (p *haPair) reloadA(edit func(string) string) {
	p.t.Helper()
	path := filepath.Join(p.run.dir, "culvert.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		p.t.Fatal(err)
	}
	out := edit(string(b))
	if out == string(b) {
		p.t.Fatal("reloadA: the edit changed nothing")
	}
	if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
		p.t.Fatal(err)
	}
	p.run.daemon.Process.Signal(syscall.SIGHUP)
}

// TestLabHAPriorityReload: a planned failover. A reload that lowers the
// master's priority below the backup's hands the VIP over, and one that
// raises it back takes it back; established nat connections carry on
// through both with no failed request.
func TestLabHAPriorityReload(t *testing.T) {
	p := startPair(t, "nat", false)
	const period = 50 * time.Millisecond
	conns := openConns(t, p.run.lab, 16, period)
	defer conns.close()
	time.Sleep(time.Second)
	for _, step := range []struct {
		from, to      string
		master, other *haNode
	}{
		{"priority: 150", "priority: 50", p.b, p.a},
		{"priority: 50", "priority: 150", p.a, p.b},
	} {
		conns.resetGaps()
		start := time.Now()
		p.reloadA(func(y string) string { return strings.Replace(y, step.from, step.to, 1) })
		p.waitState(step.master, vrrp.Master, 3*time.Second)
		p.waitState(step.other, vrrp.Backup, 2*time.Second)
		t.Logf("A %s -> %s: %s master after %v", step.from, step.to, step.master.name, time.Since(start).Round(time.Millisecond))
		time.Sleep(time.Second)
		t.Logf("  %s", conns.report())
	}
	var v VRRPView
	if err := p.show(p.a, "vrrp", &v); err != nil || len(v.Groups) != 1 || v.Groups[0].Priority != 150 {
		t.Errorf("A's group after the reloads: %+v (%v), want priority 150", v.Groups, err)
	}
	conns.mu.Lock()
	defer conns.mu.Unlock()
	if conns.fail != 0 {
		t.Errorf("%d requests failed across the planned failover and back: %v", conns.fail, conns.errs)
	}
	if conns.tcpGap > failoverBudget(period) {
		t.Errorf("longest gap %v, budget %v", conns.tcpGap, failoverBudget(period))
	}
}

// killA kills A's daemon (kill -9) and waits for B to be master of the
// first group.
func (p *haPair) killA() {
	p.t.Helper()
	p.run.daemon.Process.Signal(syscall.SIGKILL)
	p.run.daemon.Wait()
	p.run.stopped = true
	p.waitState(p.b, vrrp.Master, 3*time.Second)
}

// reloadSpec edits n's configuration as a Spec, writes it and sends the
// daemon SIGHUP.
func (p *haPair) reloadSpec(n *haNode, edit func(*appliance.Spec)) {
	p.t.Helper()
	path := filepath.Join(n.dir, "culvert.yaml")
	b, err := os.ReadFile(path)
	if err != nil {
		p.t.Fatal(err)
	}
	s, err := appliance.Parse(path, b)
	if err != nil {
		p.t.Fatal(err)
	}
	edit(s)
	out, err := appliance.Marshal(s)
	if err != nil {
		p.t.Fatal(err)
	}
	if err := os.WriteFile(path, out, 0o644); err != nil {
		p.t.Fatal(err)
	}
	proc := p.b.proc
	if n == p.a {
		proc = p.run.daemon.Process
	}
	proc.Signal(syscall.SIGHUP)
}

// TestLabHAReloadVIP: a reload may add a service on a new VIP to a running
// pair (one group, which owns every VIP). The master claims the new VIP at
// once and forwards it; the backup takes it over with the rest when the
// master dies, and the connections to both VIPs survive that. A reload
// that removes it again stops it answering.
func TestLabHAReloadVIP(t *testing.T) {
	vip2 := netip.MustParseAddr("198.18.1.2")
	p := startPair(t, "nat", false)
	const period = 50 * time.Millisecond
	l := p.run.lab
	c1 := openConnsTo(t, l, l.VIP, 8, period)
	defer c1.close()
	dial2 := func(timeout time.Duration) error {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		c, err := l.Client.DialContext(ctx, "tcp4", net.JoinHostPort(vip2.String(), "80"))
		if err == nil {
			c.Close()
		}
		return err
	}
	if err := dial2(300 * time.Millisecond); err == nil {
		t.Fatal("the new VIP answers before any reload: the test shows nothing")
	}
	addVIP2 := func(s *appliance.Spec) {
		n := len(s.Services)
		for i := 0; i < n; i++ {
			sv := s.Services[i]
			sv.Name, sv.VIP = sv.Name+"2", vip2
			s.Services = append(s.Services, sv)
		}
	}
	p.reloadSpec(p.b, addVIP2)
	p.reloadSpec(p.a, addVIP2)
	deadline := time.Now().Add(5 * time.Second)
	for {
		err := dial2(300 * time.Millisecond)
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the new VIP does not answer 5 s after the reload: %v\nA log:\n%s", err, p.run.logBuf)
		}
	}
	// Both nodes take the reload (each in its own time).
	for _, n := range []*haNode{p.a, p.b} {
		deadline := time.Now().Add(5 * time.Second)
		for {
			log := p.run.logBuf.String()
			if n == p.b {
				log = p.b.log.String()
			}
			if strings.Contains(log, "reload refused") {
				t.Fatalf("%s refused the reload:\n%s", n.name, log)
			}
			if strings.Contains(log, "vrrp group addresses set by reload") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not take the reload in 5 s:\n%s", n.name, log)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	c2 := openConnsTo(t, l, vip2, 8, period)
	defer c2.close()
	time.Sleep(time.Second)
	var sa, sb RunStats
	p.showBoth("stats", &sa, &sb)
	t.Logf("before failover: new flows A %d, B %d", sa.Dataplane.NewFlows, sb.Dataplane.NewFlows)

	c1.resetGaps()
	c2.resetGaps()
	p.killA()
	time.Sleep(2 * time.Second)
	t.Logf("after A died: VIP1 %s; VIP2 %s", c1.report(), c2.report())
	if err := dial2(time.Second); err != nil {
		t.Errorf("a new connection to the new VIP through B: %v", err)
	}
	for i, c := range []*haConns{c1, c2} {
		c.mu.Lock()
		if c.fail != 0 || c.ok == 0 {
			t.Errorf("VIP%d: %d ok, %d failed: %v", i+1, c.ok, c.fail, c.errs)
		}
		if c.tcpGap > failoverBudget(period) {
			t.Errorf("VIP%d: longest gap %v, budget %v", i+1, c.tcpGap, failoverBudget(period))
		}
		c.mu.Unlock()
	}

	// And a reload that removes the VIP's services stops it answering (the
	// service is gone from the dataplane; that the group also gives the
	// address up is TestGroupAddrChanges's and setGroupAddrs's part).
	c2.close()
	p.reloadSpec(p.b, func(s *appliance.Spec) {
		s.Services = slices.DeleteFunc(s.Services, func(sv appliance.ServiceSpec) bool { return sv.VIP == vip2 })
	})
	deadline = time.Now().Add(5 * time.Second)
	for dial2(300*time.Millisecond) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("the removed VIP still answers 5 s after the reload\nB log:\n%s", p.b.log)
		}
	}
	if err := dial2(time.Second); err == nil {
		t.Error("the removed VIP answered again")
	}
}
