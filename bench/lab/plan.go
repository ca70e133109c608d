package lab

import (
	"fmt"
	"net/netip"
	"strconv"
)

// A plan is everything Up will make, computed from Options alone so it can
// be checked without privileges: namespaces, bridges, veth pairs with the
// settings of each end, addresses, routes and sysctls.
type plan struct {
	name    string
	hosts   []*planHost // hClient, hRouter, hAppliance, hSwitch, then backends
	bridges []planBridge
	veths   []planVeth
}

// Fixed host indexes in plan.hosts.
const (
	hClient = iota
	hRouter
	hAppliance
	hSwitch
	hBackend0
)

type planHost struct {
	role    string
	ns      string      // namespace name
	links   []*planEnd  // ends in this namespace, in creation order
	routes  []planRoute // after the links are up
	loAddrs []netip.Prefix
	sysctls []sysctl
	servers bool // backend: start the HTTP, HTTPS and UDP echo servers
}

// planEnd is one end of a veth pair.
type planEnd struct {
	host    int // index in plan.hosts
	name    string
	segment string
	addr    netip.Prefix // invalid on switch ports
	mtu     int
	queues  int
	master  string // bridge to enslave the end to (switch ports)
	gro     bool   // turn GRO on: the peer of an appliance interface
	txOff   bool   // turn TX checksum offload off: a host that originates traffic
	peer    *planEnd
}

type planBridge struct {
	name, segment string
	mtu           int
}

// planVeth is created in a's namespace with b made directly in b's.
type planVeth struct{ a, b *planEnd }

type planRoute struct {
	dst netip.Prefix // invalid: the default route
	gw  netip.Addr   // invalid: on-link through dev
	dev string       // with no gw: the interface dst is reached on
}

// sysctl is one write to /proc/sys/<key with dots as slashes>. Optional
// ones are skipped when the kernel lacks the key (no IPv6, no
// br_netfilter).
type sysctl struct {
	key, value string
	optional   bool
}

// hostNum returns the address of host number n in p.
func hostNum(p netip.Prefix, n int) netip.Prefix {
	a := p.Addr().As4()
	a[3] = byte(n)
	return netip.PrefixFrom(netip.AddrFrom4(a), p.Bits())
}

// makePlan lays out the lab for normalized options o and a valid name.
func makePlan(name string, o Options) *plan {
	p := &plan{name: name}
	add := func(role string) *planHost {
		h := &planHost{role: role, ns: name + "-" + role}
		p.hosts = append(p.hosts, h)
		return h
	}
	client, router, appl, sw := add("client"), add("router"), add("appliance"), add("switch")
	for i := 0; i < o.Backends; i++ {
		add("b" + strconv.Itoa(i)).servers = !o.NoServers
	}
	var peer *planHost
	if o.Pair {
		peer = add("peer")
	}

	// Every namespace: no IPv6 (the lab is IPv4 and the appliance should
	// not see router solicitations and MLD), no reverse-path filter (DSR
	// and IPIP deliver packets whose source the receiving interface would
	// not route to), and room for many short connections.
	for _, h := range p.hosts {
		h.sysctls = append(h.sysctls,
			sysctl{"net.ipv6.conf.all.disable_ipv6", "1", true},
			sysctl{"net.ipv6.conf.default.disable_ipv6", "1", true},
			sysctl{"net.ipv4.conf.all.rp_filter", "0", false},
			sysctl{"net.ipv4.conf.default.rp_filter", "0", false},
			sysctl{"net.ipv4.ip_local_port_range", "1024 65535", false},
			sysctl{"net.ipv4.tcp_tw_reuse", "1", false},
		)
	}
	router.sysctls = append(router.sysctls,
		sysctl{"net.ipv4.ip_forward", "1", false},
		sysctl{"net.ipv4.conf.all.send_redirects", "0", false},
		sysctl{"net.ipv4.conf.default.send_redirects", "0", false},
	)
	// The switch only bridges; keep the bridged frames out of its (empty)
	// netfilter tables when br_netfilter is present.
	sw.sysctls = append(sw.sysctls,
		sysctl{"net.bridge.bridge-nf-call-iptables", "0", true},
		sysctl{"net.bridge.bridge-nf-call-ip6tables", "0", true},
		sysctl{"net.bridge.bridge-nf-call-arptables", "0", true},
	)

	routed := o.Routed
	if routed > 0 {
		p.bridges = append(p.bridges, planBridge{name + "-brs", SegmentServer, o.ServerMTU}, planBridge{name + "-brr", SegmentRouted, o.ServerMTU})
	} else {
		p.bridges = append(p.bridges, planBridge{name + "-brs", SegmentServer, o.ServerMTU})
	}
	bridge := func(seg string) string {
		if seg == SegmentRouted {
			return name + "-brr"
		}
		return name + "-brs"
	}

	// hostEnd and link build the pairs: hostEnd is an interface of a host,
	// "<name>-eth<n>"; a switch port is "<name>-<short>-<n>" after the host
	// and interface it leads to.
	hostEnd := func(hi int, seg string, addr netip.Prefix, mtu, queues int) *planEnd {
		h := p.hosts[hi]
		e := &planEnd{host: hi, name: name + "-eth" + strconv.Itoa(len(h.links)), segment: seg,
			addr: addr, mtu: mtu, queues: queues, txOff: true}
		h.links = append(h.links, e)
		return e
	}
	pair := func(a, b *planEnd) {
		a.peer, b.peer = b, a
		// XDP_REDIRECT frames into a veth are dropped unless the peer runs
		// XDP itself or has GRO (NAPI) on. (XDP_TX needs an XDP program on
		// the peer: on 6.18, GRO alone leaves the frames on the ring until
		// other traffic wakes it; bench/peer attaches one.)
		a.gro = b.host == hAppliance
		b.gro = a.host == hAppliance
		p.veths = append(p.veths, planVeth{a, b})
	}
	toSwitch := func(e *planEnd) {
		short := p.hosts[e.host].role[:1]
		if e.host >= hBackend0 {
			short = p.hosts[e.host].role
		}
		port := &planEnd{host: hSwitch, segment: e.segment, mtu: e.mtu, queues: e.queues, master: bridge(e.segment),
			name: name + "-" + short + "-" + e.name[len(name)+len("-eth"):]}
		sw.links = append(sw.links, port)
		pair(e, port)
	}
	q := o.ApplianceQueues

	// client <-> router
	pair(hostEnd(hClient, SegmentClient, hostNum(clientNet, 2), o.ClientMTU, 1),
		hostEnd(hRouter, SegmentClient, hostNum(clientNet, 1), o.ClientMTU, 1))
	// router on the server segment
	toSwitch(hostEnd(hRouter, SegmentServer, hostNum(serverNet, 1), o.ServerMTU, 1))
	// the appliance
	var applClient, applServer netip.Prefix
	var gw netip.Addr // the appliance's default gateway
	if o.Topology == TwoArmed {
		applClient, applServer = hostNum(uplinkNet, 2), hostNum(serverNet, 2)
		gw = hostNum(uplinkNet, 1).Addr()
		pair(hostEnd(hAppliance, SegmentUplink, applClient, o.ClientMTU, q),
			hostEnd(hRouter, SegmentUplink, hostNum(uplinkNet, 1), o.ClientMTU, q))
		toSwitch(hostEnd(hAppliance, SegmentServer, applServer, o.ServerMTU, q))
	} else {
		applClient, applServer = hostNum(serverNet, 2), hostNum(serverNet, 2)
		gw = hostNum(serverNet, 1).Addr()
		toSwitch(hostEnd(hAppliance, SegmentServer, applServer, o.ServerMTU, q))
	}
	if routed > 0 {
		toSwitch(hostEnd(hRouter, SegmentRouted, hostNum(routedNet, 1), o.ServerMTU, 1))
	}
	if peer != nil {
		toSwitch(hostEnd(len(p.hosts)-1, SegmentServer, hostNum(serverNet, 3), o.ServerMTU, q))
		peer.routes = append(peer.routes, planRoute{gw: gw})
	}
	// toOwned is how a host on the server segment reaches the VIPs or the
	// SNAT addresses: through the appliance, or, with a pair, on-link, so
	// that whichever appliance answers ARP for them (the VRRP master) gets
	// the traffic.
	toOwned := func(dst netip.Prefix, via netip.Addr, hi int) planRoute {
		if o.Pair {
			return planRoute{dst: dst, dev: p.hosts[hi].links[len(p.hosts[hi].links)-1].name}
		}
		return planRoute{dst: dst, gw: via}
	}
	// backends
	for i := 0; i < o.Backends; i++ {
		hi := hBackend0 + i
		h := p.hosts[hi]
		if i >= o.Backends-routed {
			toSwitch(hostEnd(hi, SegmentRouted, hostNum(routedNet, 11+i), o.ServerMTU, 1))
			h.routes = append(h.routes, planRoute{gw: hostNum(routedNet, 1).Addr()})
		} else {
			toSwitch(hostEnd(hi, SegmentServer, hostNum(serverNet, 11+i), o.ServerMTU, 1))
			// Full NAT replies go to an SNAT address: back to the appliance.
			// Anything else (DSR replies to the client) via the router.
			h.routes = append(h.routes,
				planRoute{gw: hostNum(serverNet, 1).Addr()},
				toOwned(SNATRange, applServer.Addr(), hi))
		}
		if o.DSR {
			h.loAddrs = append(h.loAddrs, netip.PrefixFrom(o.VIP, 32))
			h.sysctls = append(h.sysctls,
				sysctl{"net.ipv4.conf.all.arp_ignore", "1", false},
				sysctl{"net.ipv4.conf.all.arp_announce", "2", false},
				sysctl{"net.ipv4.conf.default.arp_ignore", "1", false},
				sysctl{"net.ipv4.conf.default.arp_announce", "2", false},
			)
		}
	}

	client.routes = append(client.routes, planRoute{gw: hostNum(clientNet, 1).Addr()})
	router.routes = append(router.routes,
		toOwned(VIPRange, applClient.Addr(), hRouter),
		toOwned(SNATRange, applServer.Addr(), hRouter))
	appl.routes = append(appl.routes, planRoute{gw: gw})
	if routed > 0 && o.Topology == TwoArmed {
		appl.routes = append(appl.routes, planRoute{dst: routedNet, gw: hostNum(serverNet, 1).Addr()})
	}
	return p
}

// check verifies the invariants Up relies on; a failure is a bug in
// makePlan.
func (p *plan) check() error {
	for _, h := range p.hosts {
		seen := map[string]bool{}
		for _, e := range h.links {
			if len(e.name) > 15 {
				return fmt.Errorf("%s: interface name %q longer than 15 bytes", h.ns, e.name)
			}
			if seen[e.name] {
				return fmt.Errorf("%s: interface name %q twice", h.ns, e.name)
			}
			seen[e.name] = true
			if e.addr.IsValid() && (!labSpace.Contains(e.addr.Addr()) || VIPRange.Overlaps(e.addr) || SNATRange.Overlaps(e.addr)) {
				return fmt.Errorf("%s %s: address %v outside the lab's host space", h.ns, e.name, e.addr)
			}
		}
	}
	ports := map[string]bool{}
	for _, e := range p.hosts[hSwitch].links {
		ports[e.name] = true
	}
	for _, b := range p.bridges {
		if len(b.name) > 15 {
			return fmt.Errorf("bridge name %q longer than 15 bytes", b.name)
		}
		if ports[b.name] {
			return fmt.Errorf("bridge name %q is a port's name too", b.name)
		}
	}
	return nil
}
