package vrrp

import (
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/internal/header"
	"github.com/culvert-lb/culvert/internal/testenv"
	"golang.org/x/sys/unix"
)

// labRouter is a Router built inside a lab namespace.
type labRouter struct {
	*Router
	rec *recorder
}

// newLabRouter builds a Router on v0 inside ns; cleanup stops it.
func newLabRouter(t *testing.T, ns *testenv.NetNS, cfg RouterConfig) *labRouter {
	t.Helper()
	cfg.Interface = "v0"
	lr := &labRouter{rec: newRecorder()}
	if err := ns.Do(func() (err error) {
		lr.Router, err = NewRouter(cfg, testLogger(t), lr.rec.callback)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(lr.Stop)
	return lr
}

func (lr *labRouter) start(t *testing.T) {
	t.Helper()
	if err := lr.Start(); err != nil {
		t.Fatal(err)
	}
}

// steady builds a (priority 200) and b (priority 100) on a lab, one group
// VRID 1 at 100ms, and waits until a is master and b backup.
func steady(t *testing.T, l *lab, ga, gb GroupConfig) (a, b *labRouter) {
	t.Helper()
	a = newLabRouter(t, l.a, routerConfig(ga))
	b = newLabRouter(t, l.b, routerConfig(gb))
	a.start(t)
	a.rec.waitFor(t, 1, Master, 2*time.Second)
	b.start(t)
	b.rec.waitFor(t, 1, Backup, time.Second)
	time.Sleep(max(250*time.Millisecond, 2*ga.Node.AdvertInterval)) // b has heard a
	a.rec.drain()
	b.rec.drain()
	if g := groupOf(t, b.Snapshot(), 1); g.State != Backup || g.Master != labA || g.AdvertsReceived == 0 {
		t.Fatalf("b does not follow a: %+v", g)
	}
	return a, b
}

func TestRouterLabElection(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	a := newLabRouter(t, l.a, routerConfig(fastGroup(1, 200)))
	b := newLabRouter(t, l.b, routerConfig(fastGroup(1, 100)))
	a.start(t)
	b.start(t) // both start together: both Backup, a's timer runs out first
	a.rec.waitFor(t, 1, Master, 2*time.Second)
	time.Sleep(500 * time.Millisecond)
	if g := groupOf(t, b.Snapshot(), 1); g.State != Backup || g.Master != labA {
		t.Fatalf("b: %+v", g)
	}
	if g := groupOf(t, a.Snapshot(), 1); g.State != Master || g.AdvertsSent < 4 {
		t.Fatalf("a: %+v", g)
	}
	for _, e := range b.rec.all() {
		if e.to == Master {
			t.Fatalf("b became master: %v", b.rec.all())
		}
	}
}

func TestRouterLabCrashFailover(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	a, b := steady(t, l, fastGroup(1, 200), fastGroup(1, 100))
	b.rec.drain()
	killed := time.Now()
	a.crash() // no priority-0 advert: b must time out
	e := b.rec.waitFor(t, 1, Master, 2*time.Second)
	took, mdi := e.at.Sub(killed), MasterDownInterval(100, 100*time.Millisecond)
	t.Logf("crash failover on veth: %v (advert_int 100ms, Master_Down_Interval %v, bound %v)", took, mdi, mdi+200*time.Millisecond)
	if took > mdi+200*time.Millisecond {
		t.Fatalf("failover took %v, want <= %v", took, mdi+200*time.Millisecond)
	}
}

func TestRouterLabStopIsFast(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	a, b := steady(t, l, slowGroup(1, 250), slowGroup(1, 200))
	b.rec.drain()
	stopped := time.Now()
	a.Stop()
	e := b.rec.waitFor(t, 1, Master, 2*time.Second)
	took := e.at.Sub(stopped)
	skew, mdi := SkewTime(200, 300*time.Millisecond), MasterDownInterval(200, 300*time.Millisecond)
	t.Logf("shutdown handover on veth: %v (advert_int 300ms, Skew_Time %v, Master_Down_Interval %v)", took, skew, mdi)
	if took > skew+200*time.Millisecond {
		t.Fatalf("handover took %v, want about Skew_Time %v", took, skew)
	}
}

func TestRouterLabPreemption(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	b := newLabRouter(t, l.b, routerConfig(fastGroup(1, 100)))
	b.start(t)
	b.rec.waitFor(t, 1, Master, 2*time.Second)
	a := newLabRouter(t, l.a, routerConfig(fastGroup(1, 200)))
	started := time.Now()
	a.start(t)
	e := a.rec.waitFor(t, 1, Master, 2*time.Second)
	b.rec.waitFor(t, 1, Backup, time.Second)
	t.Logf("higher priority preempted after %v", e.at.Sub(started))
}

func TestRouterLabNoPreemption(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	b := newLabRouter(t, l.b, routerConfig(fastGroup(1, 100)))
	b.start(t)
	b.rec.waitFor(t, 1, Master, 2*time.Second)
	ga := fastGroup(1, 200)
	ga.Node.Preempt = false
	a := newLabRouter(t, l.a, routerConfig(ga))
	a.start(t)
	a.rec.waitFor(t, 1, Backup, time.Second)
	time.Sleep(1500 * time.Millisecond) // four Master_Down_Intervals
	if tr := a.rec.all(); len(tr) != 1 {
		t.Fatalf("nopreempt router flapped: %v", tr)
	}
	if tr := b.rec.all(); len(tr) != 2 {
		t.Fatalf("master flapped: %v", tr)
	}
	if g := groupOf(t, a.Snapshot(), 1); g.State != Backup || g.Master != labB {
		t.Fatalf("a: %+v", g)
	}
}

// TestRouterLabTrackInterface takes down an interface a tracks (one end of
// a veth pair inside a's namespace: the kernel here has no dummy links),
// seen through rtnetlink: a's priority falls below b's and b preempts; up
// again, a preempts back.
func TestRouterLabTrackInterface(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	testenv.NewVeth(t, l.a, "trk0", l.a, "trk1")
	ga := fastGroup(1, 200)
	ga.TrackInterfaces = []Track{{Name: "trk0", Weight: 150}}
	a, b := steady(t, l, ga, fastGroup(1, 100))

	down := time.Now()
	l.a.MustExec(t, "ip", "link", "set", "trk1", "down") // trk0 loses carrier
	// The kernel reports carrier loss through linkwatch, which may hold a
	// non-urgent event for up to a second.
	e := b.rec.waitFor(t, 1, Master, 3*time.Second)
	a.rec.waitFor(t, 1, Backup, time.Second)
	t.Logf("tracked interface down -> peer master after %v", e.at.Sub(down))
	if g := groupOf(t, a.Snapshot(), 1); g.EffectivePriority != 50 || len(g.Down) != 1 || g.Down[0] != "interface trk0" {
		t.Fatalf("a with trk0 down: %+v", g)
	}
	a.rec.drain()
	b.rec.drain()
	l.a.MustExec(t, "ip", "link", "set", "trk1", "up")
	a.rec.waitFor(t, 1, Master, 3*time.Second)
	b.rec.waitFor(t, 1, Backup, time.Second)

	// Administratively down, and deleted, are down too.
	for _, step := range []struct {
		cmd    []string
		master *labRouter
	}{
		{[]string{"ip", "link", "set", "trk0", "down"}, b},
		{[]string{"ip", "link", "set", "trk0", "up"}, a},
		{[]string{"ip", "link", "del", "trk0"}, b},
	} {
		step.master.rec.drain()
		l.a.MustExec(t, step.cmd...)
		step.master.rec.waitFor(t, 1, Master, 3*time.Second)
	}
}

// TestRouterLabOwnLinkFault: a router whose own link loses carrier goes to
// fault instead of staying master in isolation, and comes back after.
func TestRouterLabOwnLinkFault(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	a, b := steady(t, l, fastGroup(1, 200), fastGroup(1, 100))
	l.b.MustExec(t, "ip", "link", "set", "v0", "down") // a's v0 loses carrier
	a.rec.waitFor(t, 1, Initialize, 3*time.Second)
	if g := groupOf(t, a.Snapshot(), 1); !g.Fault || len(g.Down) != 1 || g.Down[0] != "interface v0" {
		t.Fatalf("a: %+v", g)
	}
	if g := groupOf(t, b.Snapshot(), 1); !g.Fault {
		t.Fatalf("b (link down) not in fault: %+v", g)
	}
	a.rec.drain()
	b.rec.drain()
	l.b.MustExec(t, "ip", "link", "set", "v0", "up")
	a.rec.waitFor(t, 1, Master, 3*time.Second)
	b.rec.waitFor(t, 1, Backup, 3*time.Second)
}

// rawSender opens, in ns, an IPPROTO_RAW socket (IP_HDRINCL: the test
// writes the IPv4 header, TTL and source included) sending out ifname.
func rawSender(t *testing.T, ns *testenv.NetNS, ifname string) int {
	t.Helper()
	var fd int
	if err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		if fd, err = unix.Socket(unix.AF_INET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.IPPROTO_RAW); err != nil {
			return err
		}
		if err := unix.BindToDevice(fd, ifname); err != nil {
			return err
		}
		return unix.SetsockoptIPMreqn(fd, unix.IPPROTO_IP, unix.IP_MULTICAST_IF, &unix.IPMreqn{Ifindex: int32(ifi.Index)})
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// TestRouterLabHostile sends, from b's namespace with a forged source,
// advertisements that would preempt or depose a if accepted, each broken
// one way: a counts each under its reason and stays master.
func TestRouterLabHostile(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	a, b := steady(t, l, fastGroup(1, 200), fastGroup(1, 100))
	fd := rawSender(t, l.b, "v0")
	evil := netip.MustParseAddr("198.18.5.66")
	vips := []netip.Addr{vip5}
	tests := []struct {
		reason RejectReason
		pkt    []byte
		router bool // counted at the Router, not the group
	}{
		{RejectChecksum, advPacket(t, evil, 1, 255, vips, func(b []byte) bool { b[offChecksum] ^= 0x55; return false }), false},
		{RejectTTL, ipv4Packet(evil, MulticastGroup, 64, advPacket(t, evil, 1, 255, vips, nil)[20:]), false},
		{RejectVersion, advPacket(t, evil, 1, 255, vips, func(b []byte) bool { b[0] = 0x21; return true }), false},
		{RejectShort, ipv4Packet(evil, MulticastGroup, TTL, []byte{0x31, 1, 255, 0, 0, 10}), false},
		{RejectLength, advPacket(t, evil, 1, 255, vips, func(b []byte) bool { b[offCount] = 9; return true }), false},
		{RejectUnknownVRID, advPacket(t, evil, 77, 255, vips, nil), true},
	}
	const n = 10
	for range n {
		for _, tt := range tests {
			if err := unix.Sendto(fd, tt.pkt, 0, &unix.SockaddrInet4{Addr: MulticastGroup.As4()}); err != nil {
				t.Fatalf("send %v: %v", tt.reason, err)
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(300 * time.Millisecond)
	sa := a.Snapshot()
	ga := groupOf(t, sa, 1)
	for _, tt := range tests {
		got := ga.Rejects[tt.reason]
		if tt.router {
			got = sa.Rejects[tt.reason]
		}
		if got != n {
			t.Errorf("rejects[%v] = %d, want %d", tt.reason, got, n)
		}
	}
	if ga.State != Master || len(a.rec.all()) != 2 || len(b.rec.all()) != 1 {
		t.Fatalf("hostile adverts changed state: a %v, b %v", a.rec.all(), b.rec.all())
	}
	if ga.AdvertsReceived != 0 {
		t.Errorf("a accepted %d adverts", ga.AdvertsReceived)
	}
}

// captureARP opens, in ns, a packet socket that receives every ARP frame
// on ifname.
func captureARP(t *testing.T, ns *testenv.NetNS, ifname string) *os.File {
	t.Helper()
	var f *os.File
	if err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(ifname)
		if err != nil {
			return err
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ARP)))
		if err != nil {
			return err
		}
		if err := unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ARP), Ifindex: ifi.Index}); err != nil {
			unix.Close(fd)
			return err
		}
		f = os.NewFile(uintptr(fd), "arp-capture")
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

type arpSeen struct {
	at  time.Time
	eth header.Ethernet
	arp header.ARP
}

// gratuitous reads ARP frames from f until deadline and returns those in
// which sender and target protocol address are the same.
func gratuitous(f *os.File, deadline time.Time) []arpSeen {
	var seen []arpSeen
	f.SetReadDeadline(deadline)
	for {
		buf := make([]byte, 256)
		n, err := f.Read(buf)
		if err != nil {
			return seen
		}
		if n < header.EthernetMinimumSize+header.ARPSize {
			continue
		}
		a := header.ARP(buf[header.EthernetMinimumSize:n])
		if a.IsValid() && a.SenderIP() == a.TargetIP() {
			seen = append(seen, arpSeen{time.Now(), header.Ethernet(buf[:n]), a})
		}
	}
}

func TestRouterLabGARP(t *testing.T) {
	t.Parallel()
	l := newLab(t)
	capture := captureARP(t, l.b, "v0")
	var mac header.MAC
	if err := l.a.Do(func() error {
		ifi, err := net.InterfaceByName("v0")
		if err == nil {
			mac = header.MAC(ifi.HardwareAddr)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	g := fastGroup(1, 200)
	g.GARP = []netip.Addr{snat5}
	cfg := routerConfig(g)
	cfg.GARPRepeat, cfg.GARPInterval = 2, 200*time.Millisecond
	a := newLabRouter(t, l.a, cfg)
	a.start(t)
	became := a.rec.waitFor(t, 1, Master, 2*time.Second)
	seen := gratuitous(capture, became.at.Add(700*time.Millisecond))
	if len(seen) != 6 {
		t.Fatalf("peer saw %d gratuitous ARPs, want 3 rounds for 2 addresses", len(seen))
	}
	for i, s := range seen {
		want := [4]byte(([]netip.Addr{vip5, snat5})[i%2].As4())
		if s.eth.Dst() != header.BroadcastMAC || s.eth.Src() != mac || s.eth.Type() != header.EtherTypeARP ||
			s.arp.Op() != header.ARPRequest || s.arp.SenderHW() != mac || s.arp.SenderIP() != want || s.arp.TargetHW() != (header.MAC{}) {
			t.Errorf("frame %d: eth %x > %x, arp op %d sha %x spa %v tha %x, want broadcast request from %x for %v",
				i, s.eth.Src(), s.eth.Dst(), s.arp.Op(), s.arp.SenderHW(), netip.AddrFrom4(s.arp.SenderIP()), s.arp.TargetHW(), mac, netip.AddrFrom4(want))
		}
		t.Logf("gratuitous ARP %d for %v at +%v", i, netip.AddrFrom4(s.arp.SenderIP()), s.at.Sub(became.at).Round(time.Millisecond))
	}
	if gap := seen[4].at.Sub(seen[0].at); gap < 390*time.Millisecond || gap > 700*time.Millisecond {
		t.Errorf("first to third round %v apart, want 2 x 200ms", gap)
	}
}
