// Package lab builds Culvert's namespace lab: a client, a router, the
// appliance and backends running real servers, each in a network namespace
// of its own, wired with veth pairs and bridges in 198.18.0.0/15. Tests,
// `culvert demo` and the benchmark all use it. It needs root and a Linux
// kernel with veth and bridge support, and nothing else: namespaces,
// links, addresses, routes, sysctls and offload settings are made from Go
// (netlink, the ethtool ioctl, /proc/sys), not with iproute2 or ethtool.
//
// # Topologies
//
// OneArmed (the default): the appliance has one interface, on the server
// segment; traffic enters and leaves through it.
//
//	client ──── router ──┬── appliance      .2      server segment 198.18.0.0/24
//	198.19.0.2  .1    .1 ├── b0             .11     (a bridge in the "switch" namespace)
//	                     ├── b1             .12
//	                     └── b2             .13
//
// TwoArmed: the appliance's client side has a link of its own to the router
// (the uplink, 198.18.3.0/24), its server side sits on the server segment.
// The router is on the server segment too, so that DSR replies and direct
// client->backend traffic have a path that avoids the appliance.
//
//	client ──── router ──────── appliance ──┬── b0 ...
//	               .1 198.18.3.0/24 .2   .2 │
//	               └────────────────────────┘ .1 server segment
//
// Backends behind a router (RoutedBackend, or Options.Routed with any
// topology) sit on a segment of their own, 198.18.4.0/24, that only the
// router reaches: the appliance sends to them through the router.
//
// VIPs (198.18.1.0/24) and SNAT addresses (198.18.2.0/24) are on no
// appliance interface: the appliance answers for them in its dataplane.
// The router routes both ranges to the appliance (VIPs to its client side,
// SNAT to its server side). Backends on the server segment route the SNAT
// range to the appliance, since in full NAT they answer an SNAT address;
// everything else, DSR replies to the client included, goes to the router.
// Backends behind the router send everything to it.
//
// No lab namespace has a link to the machine's interfaces or a route out of
// 198.18.0.0/15, and nothing is made in the root namespace: each veth pair
// is created inside one lab namespace with its peer made directly in
// another.
//
// # Settings, and why
//
//   - TX checksum offload is off on every host interface (the switch only
//     bridges). A veth sender leaves the TCP/UDP checksum "partial": the
//     field holds only the pseudo-header sum, and a flag on the packet tells
//     the receiving kernel not to check it. An AF_XDP forwarder sees only
//     the bytes; the frame it sends on carries no such flag, so the next
//     kernel would drop it as corrupt. With offload off the senders compute
//     full checksums, as frames from a real wire have. (TSO goes with it,
//     so the appliance sees MTU-sized segments.)
//   - GRO is on on the peer of every appliance interface: frames that XDP
//     sends with XDP_TX or XDP_REDIRECT into a veth are dropped unless the
//     peer runs an XDP program or has GRO on.
//   - The appliance's veths and their peers have Options.ApplianceQueues rx
//     and tx queues each: native XDP on a veth needs at least as many rx
//     queues as its peer has tx queues. Other veths have one.
//   - Backend-side links (server and routed segments, the appliance's
//     server side) have an MTU of at least 1520, and of at least
//     ClientMTU+20, so that IPIP (a 20-byte outer header) can carry a
//     full-size client packet.
//   - Each namespace: ip_local_port_range 1024-65535 and tcp_tw_reuse=1 for
//     the many short connections of a load run; rp_filter off, since DSR
//     and IPIP deliver packets whose source the receiving interface would
//     not route back to; IPv6 off, so the appliance sees no router
//     solicitations or MLD. The router forwards and sends no redirects; the
//     appliance's kernel does not forward.
//   - DSR backends have the VIP on loopback with arp_ignore=1 and
//     arp_announce=2, so they accept the VIP's traffic but never answer ARP
//     for it. Their UDP echo server answers from the address it was asked
//     on (IP_PKTINFO), so replies come from the VIP.
//
// # Servers
//
// Up starts, on every backend, an HTTP server (GET / answers
// "backend <role>\n"; GET /bytes?n=N streams N bytes), the same over TLS
// with a self-signed certificate of the backend's own (Host.CertPEM, see
// ClientTLS), and a UDP echo server ("<role>: <payload>"), on all
// addresses. The Host methods start more anywhere.
//
// # Namespaces and threads
//
// A network namespace belongs to an OS thread, not to a goroutine.
// Host.Do runs a function on a locked thread switched into the host's
// namespace and switches it back (or retires the thread if it cannot).
// Sockets keep the namespace they were made in, so Host.Listen, Dial and
// the servers work from any goroutine afterwards. Host.Command returns an
// exec.Cmd that re-executes the current binary, which joins the namespace
// in this package's init and then execs the program; see Host.Command.
//
// Namespaces are named like `ip netns add` names them (/run/netns/<name>),
// so `ip netns exec cv1a2b-client ...` works on a lab when iproute2 is
// there. Lab.Down removes a lab; Cleanup(name) removes one whose process
// died.
package lab
