package lab

import (
	"net/netip"
	"strings"
	"testing"
)

func TestTopologyString(t *testing.T) {
	for _, tc := range []struct {
		t    Topology
		want string
	}{
		{OneArmed, "one-armed"},
		{TwoArmed, "two-armed"},
		{RoutedBackend, "routed-backend"},
		{Topology(7), "Topology(7)"},
	} {
		if got := tc.t.String(); got != tc.want {
			t.Errorf("%d.String() = %q, want %q", int(tc.t), got, tc.want)
		}
	}
}

func TestOptionsDefaults(t *testing.T) {
	o, err := Options{}.normalize()
	if err != nil {
		t.Fatal(err)
	}
	want := Options{Topology: OneArmed, Backends: 3, VIP: netip.MustParseAddr("198.18.1.1"), ClientMTU: 1500, ServerMTU: 1520,
		ApplianceQueues: 1, HTTPPort: 80, HTTPSPort: 443, UDPPort: 7}
	if o != want {
		t.Errorf("defaults = %+v\nwant %+v", o, want)
	}
	for _, tc := range []struct {
		opt               Options
		routed, serverMTU int
	}{
		{Options{Topology: RoutedBackend, ClientMTU: 9000}, 1, 9020},
		{Options{Topology: RoutedBackend, Routed: 2}, 2, 1520},
		{Options{ClientMTU: 1400}, 0, 1520},
		{Options{ClientMTU: 1501}, 0, 1521},
	} {
		o, err = tc.opt.normalize()
		if err != nil {
			t.Fatal(err)
		}
		if o.Routed != tc.routed || o.ServerMTU != tc.serverMTU {
			t.Errorf("%+v: Routed = %d, ServerMTU = %d; want %d, %d", tc.opt, o.Routed, o.ServerMTU, tc.routed, tc.serverMTU)
		}
	}
}

func TestOptionsInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  Options
		want []string // substrings, one per expected problem
	}{
		{"name too long", Options{Name: "abcdefghi"}, []string{"options.name"}},
		{"name uppercase", Options{Name: "Cv12"}, []string{"options.name"}},
		{"name with dash", Options{Name: "cv-1"}, []string{"options.name"}},
		{"name starts with digit", Options{Name: "1cv"}, []string{"options.name"}},
		{"topology", Options{Topology: 9}, []string{"options.topology"}},
		{"backends", Options{Backends: MaxBackends + 1}, []string{"options.backends"}},
		{"negative backends", Options{Backends: -1}, []string{"options.backends", "options.routed"}},
		{"routed", Options{Backends: 2, Routed: 3}, []string{"options.routed"}},
		{"vip outside range", Options{VIP: netip.MustParseAddr("198.18.0.1")}, []string{"options.vip"}},
		{"vip outside lab", Options{VIP: netip.MustParseAddr("10.0.0.1")}, []string{"options.vip"}},
		{"client mtu", Options{ClientMTU: 100}, []string{"options.clientMTU"}},
		{"server mtu no room for ipip", Options{ServerMTU: 1500}, []string{"options.serverMTU"}},
		{"server mtu under 1520", Options{ClientMTU: 1400, ServerMTU: 1420}, []string{"options.serverMTU"}},
		{"server mtu under client+20", Options{ClientMTU: 2000, ServerMTU: 2019}, []string{"options.serverMTU"}},
		{"queues", Options{ApplianceQueues: MaxQueues + 1}, []string{"options.applianceQueues"}},
		{"same ports", Options{HTTPPort: 8080, HTTPSPort: 8080}, []string{"options.httpsPort"}},
		{"every problem", Options{Name: "X", Backends: 100, ApplianceQueues: -2},
			[]string{"options.name", "options.backends", "options.applianceQueues"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tc.opt.normalize()
			if err == nil {
				t.Fatal("no error")
			}
			if n := len(strings.Split(err.Error(), "\n")); n != len(tc.want) {
				t.Errorf("%d problems, want %d: %v", n, len(tc.want), err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %s", err, w)
				}
			}
		})
	}
}

// planFor normalizes opt and makes its plan, failing t on any problem.
func planFor(t *testing.T, name string, opt Options) (*plan, Options) {
	t.Helper()
	o, err := opt.normalize()
	if err != nil {
		t.Fatal(err)
	}
	p := makePlan(name, o)
	if err := p.check(); err != nil {
		t.Fatal(err)
	}
	return p, o
}

func TestPlan(t *testing.T) {
	for _, tc := range []struct {
		name string
		opt  Options
		// appliance interfaces, backends on the routed segment
		applLinks, routed int
	}{
		{"one-armed", Options{}, 1, 0},
		{"two-armed", Options{Topology: TwoArmed, ApplianceQueues: 4}, 2, 0},
		{"routed-backend", Options{Topology: RoutedBackend}, 1, 1},
		{"two-armed routed dsr", Options{Topology: TwoArmed, Routed: 2, DSR: true, Backends: 5}, 2, 2},
		{"longest names", Options{Name: "abcdefgh", Backends: MaxBackends, Routed: MaxBackends, Topology: TwoArmed}, 2, MaxBackends},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, o := planFor(t, "abcdefgh", tc.opt)
			if got := len(p.hosts); got != 4+o.Backends {
				t.Fatalf("%d hosts, want %d", got, 4+o.Backends)
			}
			appl := p.hosts[hAppliance]
			if len(appl.links) != tc.applLinks {
				t.Errorf("appliance has %d links, want %d", len(appl.links), tc.applLinks)
			}
			for _, e := range appl.links {
				if e.queues != o.ApplianceQueues || e.peer.queues != o.ApplianceQueues {
					t.Errorf("appliance %s: queues %d, peer %d; want %d", e.name, e.queues, e.peer.queues, o.ApplianceQueues)
				}
				if !e.peer.gro {
					t.Errorf("appliance %s: GRO off on peer %s", e.name, e.peer.name)
				}
				if SNATRange.Contains(e.addr.Addr()) || VIPRange.Contains(e.addr.Addr()) {
					t.Errorf("appliance %s holds %v", e.name, e.addr)
				}
			}
			// MTU: client-side links ClientMTU, backend-side ones ServerMTU >= 1520.
			for _, h := range p.hosts {
				for _, e := range h.links {
					want := o.ServerMTU
					if e.segment == SegmentClient || e.segment == SegmentUplink {
						want = o.ClientMTU
					}
					if e.mtu != want || e.peer.mtu != want {
						t.Errorf("%s %s (%s): mtu %d/%d, want %d", h.ns, e.name, e.segment, e.mtu, e.peer.mtu, want)
					}
					if e.gro && e.peer.host != hAppliance {
						t.Errorf("%s %s: GRO on, but its peer is not the appliance", h.ns, e.name)
					}
					// Hosts originate traffic; the switch only bridges.
					if e.txOff != (e.host != hSwitch) {
						t.Errorf("%s %s: txOff = %v", h.ns, e.name, e.txOff)
					}
					if (e.master != "") != (e.host == hSwitch) {
						t.Errorf("%s %s: master %q", h.ns, e.name, e.master)
					}
				}
			}
			routed := 0
			for _, h := range p.hosts[hBackend0:] {
				if h.links[0].segment == SegmentRouted {
					routed++
				}
				if o.DSR != (len(h.loAddrs) == 1 && h.loAddrs[0] == netip.PrefixFrom(o.VIP, 32)) {
					t.Errorf("%s: lo addresses %v with DSR %v", h.ns, h.loAddrs, o.DSR)
				}
			}
			if routed != tc.routed {
				t.Errorf("%d routed backends, want %d", routed, tc.routed)
			}
		})
	}
}

func TestPlanRoutes(t *testing.T) {
	gw := func(p *planHost, dst netip.Prefix) netip.Addr {
		for _, r := range p.routes {
			if r.dst == dst {
				return r.gw
			}
		}
		return netip.Addr{}
	}
	def := netip.Prefix{}
	addr := netip.MustParseAddr
	for _, tc := range []struct {
		name string
		opt  Options
		host int
		dst  netip.Prefix
		want netip.Addr
	}{
		{"client default via router", Options{}, hClient, def, addr("198.19.0.1")},
		{"one-armed: router sends VIPs to the appliance", Options{}, hRouter, VIPRange, addr("198.18.0.2")},
		{"one-armed: router sends SNAT to the appliance", Options{}, hRouter, SNATRange, addr("198.18.0.2")},
		{"two-armed: router sends VIPs to the client side", Options{Topology: TwoArmed}, hRouter, VIPRange, addr("198.18.3.2")},
		{"two-armed: router sends SNAT to the server side", Options{Topology: TwoArmed}, hRouter, SNATRange, addr("198.18.0.2")},
		{"two-armed: appliance default via uplink", Options{Topology: TwoArmed}, hAppliance, def, addr("198.18.3.1")},
		{"two-armed: appliance reaches routed backends via router", Options{Topology: TwoArmed, Routed: 1}, hAppliance, routedNet, addr("198.18.0.1")},
		{"L2 backend: SNAT via appliance", Options{}, hBackend0, SNATRange, addr("198.18.0.2")},
		{"L2 backend: default (DSR replies) via router", Options{DSR: true}, hBackend0, def, addr("198.18.0.1")},
		{"routed backend: default via router", Options{Backends: 1, Routed: 1}, hBackend0, def, addr("198.18.4.1")},
		{"routed backend: no SNAT route of its own", Options{Backends: 1, Routed: 1}, hBackend0, SNATRange, netip.Addr{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p, _ := planFor(t, "cvtest", tc.opt)
			if got := gw(p.hosts[tc.host], tc.dst); got != tc.want {
				t.Errorf("%s: route to %v via %v, want %v", p.hosts[tc.host].ns, tc.dst, got, tc.want)
			}
		})
	}
}

func TestBytesBody(t *testing.T) {
	if !BytesBody([]byte("abcdefghijklmnopqrstuvwxyzab"), 0) || !BytesBody([]byte("zab"), 25) {
		t.Error("pattern not recognized")
	}
	if BytesBody([]byte("abd"), 0) || BytesBody([]byte("abc"), 1) {
		t.Error("wrong bytes accepted")
	}
}

// TestPlanPair: a pair adds the peer appliance at .3 on the server
// segment, and the router and the backends reach the VIPs and the SNAT
// addresses on-link, so ARP decides which appliance gets them.
func TestPlanPair(t *testing.T) {
	p, _ := planFor(t, "cvtest", Options{Pair: true})
	peer := p.hosts[len(p.hosts)-1]
	if peer.role != "peer" || len(peer.links) != 1 || peer.links[0].addr != netip.MustParsePrefix("198.18.0.3/24") ||
		peer.links[0].segment != SegmentServer {
		t.Fatalf("peer = %+v, links %+v", peer, peer.links)
	}
	onLink := func(h *planHost, dst netip.Prefix) string {
		for _, r := range h.routes {
			if r.dst == dst && !r.gw.IsValid() {
				return r.dev
			}
		}
		return ""
	}
	for _, tc := range []struct {
		host int
		dst  netip.Prefix
	}{{hRouter, VIPRange}, {hRouter, SNATRange}, {hBackend0, SNATRange}, {hBackend0 + 2, SNATRange}} {
		h := p.hosts[tc.host]
		if dev := onLink(h, tc.dst); dev != h.links[len(h.links)-1].name {
			t.Errorf("%s: route to %v on-link via %q, want its server-side link", h.ns, tc.dst, dev)
		}
	}
	if _, err := (Options{Pair: true, Topology: TwoArmed}).normalize(); err == nil || !strings.Contains(err.Error(), "options.pair") {
		t.Errorf("two-armed pair: err = %v, want an options.pair error", err)
	}
	// Without a pair nothing is on-link.
	p, _ = planFor(t, "cvtest", Options{})
	if dev := onLink(p.hosts[hRouter], VIPRange); dev != "" {
		t.Errorf("single appliance: router reaches VIPs on-link via %q", dev)
	}
}
