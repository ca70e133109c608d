package vrrp

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

var (
	addrA = "198.18.5.1"
	addrB = "198.18.5.2"
	vip5  = netip.MustParseAddr("198.18.5.100")
	snat5 = netip.MustParseAddr("198.18.5.200")
)

// failoverBound is the brief's requirement: a backup takes over within
// Master_Down_Interval + 200ms of the master going silent.
func failoverBound(prio uint8, interval time.Duration) time.Duration {
	return MasterDownInterval(prio, interval) + 200*time.Millisecond
}

func TestRejectReasonString(t *testing.T) {
	seen := map[string]bool{}
	for r := RejectNone; r < NumRejectReasons; r++ {
		s := r.String()
		if s == "" || strings.HasPrefix(s, "RejectReason(") || seen[s] {
			t.Errorf("%d.String() = %q: empty, unnamed or duplicate", r, s)
		}
		seen[s] = true
	}
	if got := NumRejectReasons.String(); got != "RejectReason(14)" {
		t.Errorf("NumRejectReasons.String() = %q", got)
	}
}

func TestRouterConfigValidate(t *testing.T) {
	good := func() RouterConfig {
		c := routerConfig(fastGroup(1, 100))
		c.Interface = "eth0"
		return c
	}
	tests := []struct {
		name string
		edit func(c *RouterConfig)
		want []string // substrings, each must appear
	}{
		{"valid", func(c *RouterConfig) {}, nil},
		{"valid unicast", func(c *RouterConfig) { c.Peers = []netip.Addr{netip.MustParseAddr(addrB)} }, nil},
		{"no interface", func(c *RouterConfig) { c.Interface = "" }, []string{"interface: empty"}},
		{"no groups", func(c *RouterConfig) { c.Groups = nil }, []string{"groups: none"}},
		{"ipv6 addr", func(c *RouterConfig) { c.Addr = netip.MustParseAddr("2001:db8::1") }, []string{"addr: 2001:db8::1: not an IPv4"}},
		{"multicast peer", func(c *RouterConfig) { c.Peers = []netip.Addr{MulticastGroup} }, []string{"peers[0]: 224.0.0.18: not a unicast"}},
		{"self as peer", func(c *RouterConfig) {
			c.Addr = netip.MustParseAddr(addrA)
			c.Peers = []netip.Addr{c.Addr}
		}, []string{"peers[0]: 198.18.5.1: is this router's own address"}},
		{"negative garp", func(c *RouterConfig) { c.GARPRepeat, c.GARPInterval = -1, -time.Second }, []string{"garp_repeat: -1", "garp_interval: -1s"}},
		{"duplicate vrid", func(c *RouterConfig) { c.Groups = append(c.Groups, fastGroup(1, 50)) }, []string{"groups[1].node.vrid: 1: also used by groups[0]"}},
		{"node errors located", func(c *RouterConfig) {
			c.Groups[0].Node.VRID, c.Groups[0].Node.Priority = 0, 0
		}, []string{"groups[0].node.vrid: must be 1..255", "groups[0].node.priority: must be 1..255"}},
		{"node addr differs", func(c *RouterConfig) {
			c.Addr = netip.MustParseAddr(addrA)
			c.Groups[0].Node.Addr = netip.MustParseAddr(addrB)
		}, []string{"groups[0].node.addr: 198.18.5.2: differs"}},
		{"garp not ipv4", func(c *RouterConfig) { c.Groups[0].GARP = []netip.Addr{{}} }, []string{"groups[0].garp[0]: invalid IP: not an IPv4"}},
		{"track names", func(c *RouterConfig) {
			c.Groups[0].Track = []Track{{Name: "x"}, {Name: "x"}, {}}
		}, []string{`groups[0].track[1].name: "x" listed twice`, "groups[0].track[2].name: empty"}},
		{"owner with weight", func(c *RouterConfig) {
			c.Groups[0].Node.Priority = OwnerPriority
			c.Groups[0].TrackInterfaces = []Track{{Name: "eth1", Weight: 10}, {Name: "eth2"}}
		}, []string{"groups[0].track_interfaces[0].weight: 10: the address owner"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := good()
			tt.edit(&c)
			err := c.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: nil, want %q", tt.want)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate: %v\nwant it to contain %q", err, w)
				}
			}
		})
	}
}

// advPacket is a whole IPv4 packet carrying an advertisement for vrid with
// prio and addrs from src to 224.0.0.18, with TTL 255; edit may change the
// VRRP message and then the checksum is recomputed unless it returns false.
func advPacket(t testing.TB, src netip.Addr, vrid, prio uint8, addrs []netip.Addr, edit func(b []byte) (fixSum bool)) []byte {
	t.Helper()
	a := Advert{VRID: vrid, Priority: prio, MaxAdvertInterval: 100 * time.Millisecond, Addrs: addrs}
	if vrid == 0 {
		a.VRID = 1
	}
	b, err := a.Marshal(src, MulticastGroup)
	if err != nil {
		t.Fatal(err)
	}
	b[offVRID] = vrid
	if edit == nil || edit(b) || vrid == 0 {
		b[offChecksum], b[offChecksum+1] = 0, 0
		binary.BigEndian.PutUint16(b[offChecksum:], ^checksum(b, src, MulticastGroup))
	}
	return ipv4Packet(src, MulticastGroup, TTL, b)
}

// TestRouterClassify runs every receive check on a Router that is not
// started: each packet is counted under exactly one reason, at the group
// its VRID names or else at the Router.
func TestRouterClassify(t *testing.T) {
	peer := netip.MustParseAddr(addrB)
	own := netip.MustParseAddr(addrA)
	vips := []netip.Addr{vip5}
	strict := fastGroup(8, 100)
	strict.CheckAddrs = true
	good := advPacket(t, peer, 7, 100, vips, nil)
	tests := []struct {
		name     string
		pkt      []byte
		want     RejectReason
		group    uint8 // group the count lands in; 0: the Router
		mismatch bool
	}{
		{"good", good, RejectNone, 7, false},
		{"good, addresses reordered", advPacket(t, peer, 7, 100, []netip.Addr{vip5}, nil), RejectNone, 7, false},
		{"empty", nil, RejectIPHeader, 0, false},
		{"ip header cut", good[:19], RejectIPHeader, 0, false},
		{"ip total length beyond read", good[:len(good)-1], RejectIPHeader, 0, false},
		{"ip checksum", func() []byte { p := slices.Clone(good); p[10] ^= 1; return p }(), RejectIPHeader, 0, false},
		{"not vrrp", func() []byte {
			p := slices.Clone(good)
			p[9] = 17
			p[10], p[11] = 0, 0
			binary.BigEndian.PutUint16(p[10:], ^checksumIPv4(p[:20]))
			return p
		}(), RejectIPHeader, 0, false},
		{"ttl 64", ipv4Packet(peer, MulticastGroup, 64, good[20:]), RejectTTL, 7, false},
		{"ttl 64 unknown vrid", ipv4Packet(peer, MulticastGroup, 64, advPacket(t, peer, 99, 100, vips, nil)[20:]), RejectTTL, 0, false},
		{"one byte", ipv4Packet(peer, MulticastGroup, TTL, []byte{0x31}), RejectShort, 0, false},
		{"seven bytes", ipv4Packet(peer, MulticastGroup, TTL, good[20:27]), RejectShort, 7, false},
		{"version 2", advPacket(t, peer, 7, 100, vips, func(b []byte) bool { b[0] = 0x21; return true }), RejectVersion, 7, false},
		{"type 2", advPacket(t, peer, 7, 100, vips, func(b []byte) bool { b[0] = 0x32; return true }), RejectType, 7, false},
		{"count says 2", advPacket(t, peer, 7, 100, vips, func(b []byte) bool { b[offCount] = 2; return true }), RejectLength, 7, false},
		{"bad checksum", advPacket(t, peer, 7, 255, vips, func(b []byte) bool { b[offChecksum] ^= 0xff; return false }), RejectChecksum, 7, false},
		{"vrid 0", advPacket(t, peer, 0, 100, vips, nil), RejectVRIDZero, 0, false},
		{"interval 0", advPacket(t, peer, 7, 100, vips, func(b []byte) bool { b[offInterval], b[offInterval+1] = 0, 0; return true }), RejectInterval, 7, false},
		{"unknown vrid", advPacket(t, peer, 99, 100, vips, nil), RejectUnknownVRID, 0, false},
		{"own address", advPacket(t, own, 7, 100, vips, nil), RejectOwn, 7, false},
		{"other addresses, lenient", advPacket(t, peer, 7, 100, []netip.Addr{snat5}, nil), RejectNone, 7, true},
		{"no addresses, lenient", advPacket(t, peer, 7, 100, nil, nil), RejectNone, 7, true},
		{"other addresses, strict", advPacket(t, peer, 8, 100, []netip.Addr{snat5}, nil), RejectAddrMismatch, 8, false},
		{"extra address, strict", advPacket(t, peer, 8, 100, []netip.Addr{vip5, snat5}, nil), RejectAddrMismatch, 8, false},
		{"duplicate address, strict", advPacket(t, peer, 8, 100, []netip.Addr{vip5, vip5}, nil), RejectAddrMismatch, 8, false},
		{"other addresses from owner, strict", advPacket(t, peer, 8, 255, []netip.Addr{snat5}, nil), RejectNone, 8, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newMemRouter(t, new(memLink), addrA, routerConfig(fastGroup(7, 100), strict))
			_, ok := m.receive(tt.pkt)
			if ok != (tt.want == RejectNone) {
				t.Fatalf("receive delivered = %v, want reason %v", ok, tt.want)
			}
			s := m.Snapshot()
			var total uint64
			for r := range NumRejectReasons {
				total += s.Rejects[r]
				for _, g := range s.Groups {
					total += g.Rejects[r]
				}
			}
			for _, g := range s.Groups {
				total += g.AdvertsReceived
			}
			if total != 1 {
				t.Fatalf("packet counted %d times: %+v", total, s)
			}
			if tt.want == RejectNone {
				g := groupOf(t, s, tt.group)
				if g.AdvertsReceived != 1 || (g.AddrMismatches == 1) != tt.mismatch {
					t.Fatalf("group %d: received %d, mismatches %d, want 1, %v", tt.group, g.AdvertsReceived, g.AddrMismatches, tt.mismatch)
				}
				return
			}
			got := s.Rejects[tt.want]
			if tt.group != 0 {
				got = groupOf(t, s, tt.group).Rejects[tt.want]
			}
			if got != 1 {
				t.Fatalf("reason %v not counted at group %d: %+v", tt.want, tt.group, s)
			}
		})
	}
}

func checksumIPv4(h []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(h); i += 2 {
		s += uint32(binary.BigEndian.Uint16(h[i:]))
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// TestRouterReceiveAllocs is the receive path's allocation contract: a
// packet is checked and counted, accepted or not, without allocating.
func TestRouterReceiveAllocs(t *testing.T) {
	m := newMemRouter(t, new(memLink), addrA, routerConfig(fastGroup(7, 100)))
	peer := netip.MustParseAddr(addrB)
	pkts := map[string][]byte{
		"good":         advPacket(t, peer, 7, 100, []netip.Addr{vip5}, nil),
		"bad checksum": advPacket(t, peer, 7, 100, []netip.Addr{vip5}, func(b []byte) bool { b[offChecksum] ^= 1; return false }),
		"ttl":          ipv4Packet(peer, MulticastGroup, 1, advPacket(t, peer, 7, 100, nil, nil)[20:]),
		"unknown vrid": advPacket(t, peer, 9, 100, nil, nil),
		"mismatch":     advPacket(t, peer, 7, 100, nil, nil),
	}
	for name, pkt := range pkts {
		t.Run(name, func(t *testing.T) {
			if got := testing.AllocsPerRun(1000, func() { m.receive(pkt) }); got != 0 {
				t.Fatalf("receive allocates %v per packet", got)
			}
		})
	}
}

func BenchmarkRouterReceive(b *testing.B) {
	link := new(memLink)
	cfg := routerConfig(fastGroup(7, 100))
	cfg.Interface, cfg.Addr = "mem0", netip.MustParseAddr(addrA)
	r, err := newRouter(cfg, nil, nil, link.port(cfg.Addr), nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	peer := netip.MustParseAddr(addrB)
	for _, bc := range []struct {
		name string
		pkt  []byte
	}{
		{"good", advPacket(b, peer, 7, 100, []netip.Addr{vip5}, nil)},
		{"bad-checksum", advPacket(b, peer, 7, 100, []netip.Addr{vip5}, func(b []byte) bool { b[offChecksum] ^= 1; return false })},
		{"unknown-vrid", advPacket(b, peer, 9, 100, nil, nil)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				r.receive(bc.pkt)
			}
		})
	}
}

func TestRouterElectsAndDispatchesByVRID(t *testing.T) {
	link := new(memLink)
	// Group 1 prefers a, group 2 prefers b: one socket each, two masters.
	a := newMemRouter(t, link, addrA, routerConfig(fastGroup(1, 200), fastGroup(2, 100)))
	b := newMemRouter(t, link, addrB, routerConfig(fastGroup(1, 100), fastGroup(2, 200)))
	for _, r := range []*memRouter{a, b} {
		if err := r.Start(); err != nil {
			t.Fatal(err)
		}
	}
	waitState(t, a.Router, 1, Master, 2*time.Second)
	waitState(t, b.Router, 2, Master, 2*time.Second)
	waitState(t, a.Router, 2, Backup, time.Second)
	waitState(t, b.Router, 1, Backup, time.Second)
	time.Sleep(300 * time.Millisecond) // a few adverts each way
	sa, sb := a.Snapshot(), b.Snapshot()
	if g := groupOf(t, sa, 1); g.Master != netip.MustParseAddr(addrA) || g.AdvertsSent < 2 || g.Priority != 200 || g.EffectivePriority != 200 {
		t.Errorf("a group 1: %+v", g)
	}
	if g := groupOf(t, sa, 2); g.Master != netip.MustParseAddr(addrB) || g.AdvertsReceived < 2 {
		t.Errorf("a group 2 does not see b as master: %+v", g)
	}
	if g := groupOf(t, sb, 1); g.Master != netip.MustParseAddr(addrA) || g.AdvertsReceived < 2 {
		t.Errorf("b group 1 does not see a as master: %+v", g)
	}
	for _, s := range []Snapshot{sa, sb} {
		if s.Rejects != [NumRejectReasons]uint64{} {
			t.Errorf("%v rejects: %v", s.Addr, s.Rejects)
		}
		for _, g := range s.Groups {
			if g.LastTransition.IsZero() || g.Transitions == 0 {
				t.Errorf("%v group %d: no transition recorded: %+v", s.Addr, g.VRID, g)
			}
		}
	}
	if err := a.Start(); err == nil {
		t.Error("second Start succeeded")
	}
}

func TestRouterCrashFailover(t *testing.T) {
	a, b := startMemPair(t, fastGroup(1, 200))
	time.Sleep(250 * time.Millisecond)
	b.rec.drain()
	killed := time.Now()
	a.crash()
	e := b.rec.waitFor(t, 1, Master, 2*time.Second)
	took, bound := e.at.Sub(killed), failoverBound(100, 100*time.Millisecond)
	t.Logf("crash failover (memory link): %v (Master_Down_Interval %v, bound %v)", took, MasterDownInterval(100, 100*time.Millisecond), bound)
	if took > bound {
		t.Fatalf("failover took %v, want <= %v", took, bound)
	}
	if tr := a.rec.all(); tr[len(tr)-1].to != Master {
		t.Errorf("crash reported a transition: %v", tr)
	}
}

func TestRouterStopHandsOverAfterSkew(t *testing.T) {
	link := new(memLink)
	a := newMemRouter(t, link, addrA, routerConfig(slowGroup(1, 250)))
	b := newMemRouter(t, link, addrB, routerConfig(slowGroup(1, 200)))
	a.Start()
	a.rec.waitFor(t, 1, Master, 2*time.Second)
	b.Start()
	b.rec.waitFor(t, 1, Backup, time.Second)
	time.Sleep(700 * time.Millisecond)
	a.rec.drain()
	b.rec.drain()
	stopped := time.Now()
	a.Stop()
	if e := a.rec.waitFor(t, 1, Initialize, time.Second); e.from != Master {
		t.Errorf("stop reported %v -> %v", e.from, e.to)
	}
	e := b.rec.waitFor(t, 1, Master, 2*time.Second)
	took := e.at.Sub(stopped)
	skew, mdi := SkewTime(200, 300*time.Millisecond), MasterDownInterval(200, 300*time.Millisecond)
	t.Logf("shutdown handover (memory link): %v (Skew_Time %v, Master_Down_Interval %v)", took, skew, mdi)
	if took > skew+200*time.Millisecond {
		t.Fatalf("handover took %v, want about Skew_Time %v", took, skew)
	}
	if s := groupOf(t, a.Snapshot(), 1); s.State != Initialize || s.Master.IsValid() {
		t.Errorf("stopped router: %+v", s)
	}
	a.Stop() // twice is fine
}

func TestRouterStopBeforeStart(t *testing.T) {
	m := newMemRouter(t, new(memLink), addrA, routerConfig(fastGroup(1, 100)))
	m.Stop()
	if _, err := m.port.Read(make([]byte, 10)); err == nil {
		t.Fatal("Stop left the socket open")
	}
	if err := m.Start(); err == nil {
		t.Fatal("Start after Stop succeeded")
	}
	if len(m.rec.all()) != 0 {
		t.Fatalf("transitions without Start: %v", m.rec.all())
	}
}

// startTrackedPair starts a (priority 200, tracking "svc" with weight w)
// and then b (100) on one memory link, a master and b backup.
func startTrackedPair(t *testing.T, w uint8) (a, b *memRouter) {
	t.Helper()
	ga := fastGroup(1, 200)
	ga.Track = []Track{{Name: "svc", Weight: w}}
	return startMemPair(t, ga)
}

// startMemPair starts a with group ga on a memory link and waits for it to
// be master, then b with the same VRID at priority 100, backup.
func startMemPair(t *testing.T, ga GroupConfig) (a, b *memRouter) {
	t.Helper()
	link := new(memLink)
	a = newMemRouter(t, link, addrA, routerConfig(ga))
	b = newMemRouter(t, link, addrB, routerConfig(fastGroup(ga.Node.VRID, 100)))
	a.Start()
	a.rec.waitFor(t, 1, Master, time.Second)
	b.Start()
	b.rec.waitFor(t, 1, Backup, time.Second)
	return a, b
}

// switchOver runs change and waits for group 1 of to to become master
// and that of from backup.
func switchOver(t *testing.T, change func(), to, from *memRouter) {
	t.Helper()
	to.rec.drain()
	from.rec.drain()
	change()
	to.rec.waitFor(t, 1, Master, 2*time.Second)
	from.rec.waitFor(t, 1, Backup, time.Second)
}

func mustSetPriority(t *testing.T, r *memRouter, p uint8) {
	t.Helper()
	if err := r.SetPriority(1, p); err != nil {
		t.Fatal(err)
	}
}

// TestRouterTrackWeight lowers a master's priority below its peer's with a
// tracked condition and raises it back: the peer preempts, then the master
// preempts back.
func TestRouterTrackWeight(t *testing.T) {
	a, b := startTrackedPair(t, 150)

	switchOver(t, func() {
		a.SetTracked("nobody-tracks-this", false) // ignored
		a.SetTracked("svc", false)
	}, b, a)
	if g := groupOf(t, a.Snapshot(), 1); g.EffectivePriority != 50 || g.Priority != 200 || !slices.Equal(g.Down, []string{"track svc"}) {
		t.Errorf("a after svc down: %+v", g)
	}
	switchOver(t, func() { a.SetTracked("svc", true) }, a, b)
	if g := groupOf(t, a.Snapshot(), 1); g.EffectivePriority != 200 || len(g.Down) != 0 {
		t.Errorf("a after svc up: %+v", g)
	}
}

// TestRouterSetPriority: a reload lowers the master's priority below its
// peer's, which preempts; raising it back makes it preempt again. Tracking
// still applies on top; bad values are refused and change nothing.
func TestRouterSetPriority(t *testing.T) {
	a, b := startTrackedPair(t, 20)

	for _, bad := range []struct {
		vrid, p uint8
	}{{2, 50}, {1, 0}, {1, OwnerPriority}} {
		if err := a.SetPriority(bad.vrid, bad.p); err == nil {
			t.Errorf("SetPriority(%d, %d) accepted", bad.vrid, bad.p)
		}
	}
	switchOver(t, func() { mustSetPriority(t, a, 50) }, b, a)
	a.SetTracked("svc", false)
	time.Sleep(50 * time.Millisecond) // the driver takes it in
	if g := groupOf(t, a.Snapshot(), 1); g.Priority != 50 || g.EffectivePriority != 30 {
		t.Errorf("a at 50 with svc down: priority %d effective %d, want 50 and 30", g.Priority, g.EffectivePriority)
	}
	a.SetTracked("svc", true)
	switchOver(t, func() { mustSetPriority(t, a, 200) }, a, b)
	if g := groupOf(t, a.Snapshot(), 1); g.Priority != 200 || g.EffectivePriority != 200 {
		t.Errorf("a back at 200: %+v", g)
	}
}

// TestRouterFault faults a master with a weight-0 item: it resigns with a
// priority-0 advert, so the backup takes over after Skew_Time, and it
// stays in Initialize until the item is back, then preempts.
func TestRouterFault(t *testing.T) {
	for _, kind := range []string{"condition", "own interface"} {
		t.Run(kind, func(t *testing.T) {
			t.Parallel()
			link := new(memLink)
			ga := slowGroup(1, 250)
			ga.Track = []Track{{Name: "must", Weight: 0}}
			a := newMemRouter(t, link, addrA, routerConfig(ga))
			b := newMemRouter(t, link, addrB, routerConfig(slowGroup(1, 200)))
			set := func(ok bool) {
				if kind == "condition" {
					a.SetTracked("must", ok)
				} else {
					a.setLink("mem0", ok)
				}
			}
			a.Start()
			a.rec.waitFor(t, 1, Master, 2*time.Second)
			b.Start()
			b.rec.waitFor(t, 1, Backup, time.Second)
			time.Sleep(400 * time.Millisecond)
			a.rec.drain()
			b.rec.drain()
			faulted := time.Now()
			set(false)
			a.rec.waitFor(t, 1, Initialize, time.Second)
			e := b.rec.waitFor(t, 1, Master, time.Second)
			if took := e.at.Sub(faulted); took > SkewTime(200, 300*time.Millisecond)+200*time.Millisecond {
				t.Errorf("takeover after fault took %v: priority-0 advert not sent?", took)
			}
			time.Sleep(1200 * time.Millisecond) // longer than a's Master_Down_Interval
			g := groupOf(t, a.Snapshot(), 1)
			if g.State != Initialize || !g.Fault || len(g.Down) != 1 {
				t.Fatalf("a in fault: %+v", g)
			}
			a.rec.drain()
			set(true)
			a.rec.waitFor(t, 1, Backup, time.Second)
			a.rec.waitFor(t, 1, Master, 3*time.Second)
			if g := groupOf(t, a.Snapshot(), 1); g.Fault || g.State != Master {
				t.Fatalf("a after fault cleared: %+v", g)
			}
		})
	}
}

func TestRouterFaultAtStart(t *testing.T) {
	ga := fastGroup(1, 200)
	ga.TrackInterfaces = []Track{{Name: "eth9", Weight: 0}}
	a := newMemRouter(t, new(memLink), addrA, routerConfig(ga))
	a.setLink("eth9", false) // as NewRouter's first read would
	a.Start()
	time.Sleep(600 * time.Millisecond)
	if g := groupOf(t, a.Snapshot(), 1); g.State != Initialize || !g.Fault || len(a.rec.all()) != 0 {
		t.Fatalf("group started despite a down weight-0 interface: %+v %v", g, a.rec.all())
	}
	a.setLink("eth9", true)
	a.rec.waitFor(t, 1, Master, 2*time.Second)
}

// TestRouterGARP checks the announcement schedule: one round at once with
// the group's VIPs and its extra GARP addresses, then GARPRepeat more.
func TestRouterGARP(t *testing.T) {
	g := fastGroup(1, 200)
	g.GARP = []netip.Addr{snat5, vip5} // vip5 again: sent once
	cfg := routerConfig(g)
	cfg.GARPRepeat, cfg.GARPInterval = 2, 80*time.Millisecond
	a := newMemRouter(t, new(memLink), addrA, cfg)
	a.Start()
	became := a.rec.waitFor(t, 1, Master, time.Second)
	time.Sleep(400 * time.Millisecond)
	sent := a.arp.list()
	if len(sent) != 6 {
		t.Fatalf("%d announcements, want 3 rounds of 2: %v", len(sent), sent)
	}
	for i, s := range sent {
		want := []netip.Addr{vip5, snat5}[i%2]
		if s.addr != want {
			t.Errorf("announcement %d: %v, want %v", i, s.addr, want)
		}
		round := time.Duration(i/2) * cfg.GARPInterval
		if off := s.at.Sub(became.at); off < round-5*time.Millisecond || off > round+150*time.Millisecond {
			t.Errorf("announcement %d at +%v, want about +%v", i, off, round)
		}
	}
}

// TestRouterGARPCancelled stops the repeats when the group is preempted.
func TestRouterGARPCancelled(t *testing.T) {
	link := new(memLink)
	cfg := routerConfig(fastGroup(1, 100))
	cfg.GARPRepeat, cfg.GARPInterval = 50, 100*time.Millisecond
	a := newMemRouter(t, link, addrA, cfg)
	a.Start()
	a.rec.waitFor(t, 1, Master, time.Second)
	b := newMemRouter(t, link, addrB, routerConfig(fastGroup(1, 200)))
	a.rec.drain()
	b.Start()
	lost := a.rec.waitFor(t, 1, Backup, 2*time.Second)
	time.Sleep(350 * time.Millisecond)
	// Every announcement after the loss must follow a new mastership (a
	// starved backup may be re-elected on a loaded machine).
	sent, trs := a.arp.list(), a.rec.all()
	for _, s := range sent {
		if !s.at.After(lost.at) {
			continue
		}
		if !slices.ContainsFunc(trs, func(e transitionEvent) bool {
			return e.to == Master && e.at.After(lost.at) && !e.at.After(s.at)
		}) {
			t.Fatalf("announcement at %s after losing mastership at %s; transitions %v", s.at.Format("15:04:05.000"), lost, trs)
		}
	}
	if len(sent) >= 50 {
		t.Fatalf("%d announcements: repeats never cancelled", len(sent))
	}
}

// TestRouterHostileChangesNothing feeds a backup, and then a master,
// advertisements that would take over or resign if they were accepted.
func TestRouterHostileChangesNothing(t *testing.T) {
	a, b := startMemPair(t, fastGroup(1, 200))
	evil := netip.MustParseAddr("198.18.5.66")
	vips := []netip.Addr{vip5}
	hostile := [][]byte{
		advPacket(t, evil, 1, 255, vips, func(b []byte) bool { b[offChecksum] ^= 0x55; return false }),
		ipv4Packet(evil, MulticastGroup, 64, advPacket(t, evil, 1, 255, vips, nil)[20:]),
		advPacket(t, evil, 1, 255, vips, func(b []byte) bool { b[0] = 0x21; return true }),
		advPacket(t, evil, 1, 255, vips, func(b []byte) bool { b[offCount] = 3; return true }),
		advPacket(t, evil, 1, 0, vips, func(b []byte) bool { b[0] = 0x31 | 0x02; return true }),
		advPacket(t, evil, 42, 255, vips, nil),
		advPacket(t, evil, 1, 255, vips, nil)[:25],
	}
	// A forged "a resigns", sent to a itself. (To b it would be a genuine
	// resignation: VRRPv3 has no authentication.)
	forged := advPacket(t, netip.MustParseAddr(addrA), 1, 0, vips, nil)
	before := len(a.rec.all()) + len(b.rec.all())
	for range 20 {
		for _, p := range hostile {
			a.port.inject(p)
			b.port.inject(p)
		}
		a.port.inject(forged)
		time.Sleep(10 * time.Millisecond)
	}
	time.Sleep(200 * time.Millisecond)
	if after := len(a.rec.all()) + len(b.rec.all()); after != before {
		t.Fatalf("hostile packets caused transitions: a %v b %v", a.rec.all(), b.rec.all())
	}
	sa := a.Snapshot()
	ga := groupOf(t, sa, 1)
	for _, r := range []RejectReason{RejectChecksum, RejectTTL, RejectVersion, RejectLength, RejectType, RejectOwn} {
		if ga.Rejects[r] != 20 {
			t.Errorf("a rejects[%v] = %d, want 20", r, ga.Rejects[r])
		}
	}
	if sa.Rejects[RejectUnknownVRID] != 20 || sa.Rejects[RejectIPHeader] != 20 {
		t.Errorf("a router rejects: %v", sa.Rejects)
	}
}

// TestRouterSendErrorsCounted: a failing send is counted, not fatal.
func TestRouterSendErrorsCounted(t *testing.T) {
	link := new(memLink)
	a := newMemRouter(t, link, addrA, routerConfig(fastGroup(1, 200)))
	a.port.Close() // every Send now fails; Read reports closed
	a.Start()
	a.rec.waitFor(t, 1, Master, time.Second)
	time.Sleep(150 * time.Millisecond)
	s := a.Snapshot()
	if s.SendErrors == 0 || groupOf(t, s, 1).AdvertsSent != 0 {
		t.Fatalf("send errors not counted: %+v", s)
	}
	if !errors.Is(a.port.Send(&Advert{}), net.ErrClosed) {
		t.Fatal("closed port accepted a send")
	}
}

// TestRouterSetAddrs: a reload's new address lists. Before Start they are
// used from the first mastership; on a master the new addresses are
// announced at once, the next advertisements carry the new list (the
// backup, still on the old one, counts mismatches until it takes the same
// list), and a removed address is not announced again.
func TestRouterSetAddrs(t *testing.T) {
	snat6 := netip.MustParseAddr("198.18.5.201")
	vip6 := netip.MustParseAddr("198.18.5.101")
	link := new(memLink)
	cfg := routerConfig(fastGroup(1, 200))
	cfg.GARPRepeat = 0
	a := newMemRouter(t, link, addrA, cfg)
	b := newMemRouter(t, link, addrB, routerConfig(fastGroup(1, 100)))
	if err := a.SetAddrs(9, nil, nil); err == nil {
		t.Error("SetAddrs for a VRID the router does not run succeeded")
	}
	if err := a.SetAddrs(1, []netip.Addr{vip5}, []netip.Addr{{}}); err == nil {
		t.Error("SetAddrs with an invalid GARP address succeeded")
	}
	if err := a.SetAddrs(1, []netip.Addr{{}}, nil); err == nil {
		t.Error("SetAddrs with an invalid virtual address succeeded")
	}
	// Set before Start: used from the first mastership on.
	if err := a.SetAddrs(1, []netip.Addr{vip5}, []netip.Addr{snat5}); err != nil {
		t.Fatal(err)
	}
	a.Start()
	b.Start()
	a.rec.waitFor(t, 1, Master, time.Second)
	b.rec.waitFor(t, 1, Backup, time.Second)
	time.Sleep(50 * time.Millisecond)
	want := []netip.Addr{vip5, snat5}
	if got := addrsOf(a.arp.list()); !slices.Equal(got, want) {
		t.Fatalf("announced %v, want %v", got, want)
	}
	mismatches := func() uint64 { return groupOf(t, b.Snapshot(), 1).AddrMismatches }
	if n := mismatches(); n != 0 {
		t.Fatalf("b counted %d address mismatches with the same lists", n)
	}

	// While master: only the new addresses are announced, at once, and
	// the adverts carry the new list.
	if err := a.SetAddrs(1, []netip.Addr{vip5, vip6}, []netip.Addr{snat5, snat6}); err != nil {
		t.Fatal(err)
	}
	time.Sleep(350 * time.Millisecond)
	want = append(want, vip6, snat6)
	if got := addrsOf(a.arp.list()); !slices.Equal(got, want) {
		t.Fatalf("announced %v, want %v", got, want)
	}
	if n := mismatches(); n < 2 {
		t.Fatalf("b counted %d address mismatches in 350 ms of adverts with a new list", n)
	}
	if err := b.SetAddrs(1, []netip.Addr{vip6, vip5}, nil); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	n := mismatches()
	time.Sleep(350 * time.Millisecond)
	if m := mismatches(); m != n {
		t.Fatalf("b counted %d more mismatches once its list was the same set", m-n)
	}
	if g := groupOf(t, b.Snapshot(), 1); g.State != Backup {
		t.Fatalf("b is %v, want backup throughout", g.State)
	}

	// Removing an address: a later mastership announces the new list only.
	if err := a.SetAddrs(1, []netip.Addr{vip6}, nil); err != nil {
		t.Fatal(err)
	}
	b.SetAddrs(1, []netip.Addr{vip6}, nil)
	before := len(a.arp.list())
	switchOver(t, func() { mustSetPriority(t, a, 50) }, b, a)
	switchOver(t, func() { mustSetPriority(t, a, 200) }, a, b)
	time.Sleep(50 * time.Millisecond)
	if got := addrsOf(a.arp.list()[before:]); !slices.Equal(got, []netip.Addr{vip6}) {
		t.Fatalf("announced %v on the new mastership, want [%v]", got, vip6)
	}
}

func addrsOf(s []garpSent) []netip.Addr {
	var l []netip.Addr
	for _, g := range s {
		l = append(l, g.addr)
	}
	return l
}
