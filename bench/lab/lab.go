package lab

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"

	"github.com/vishvananda/netns"
)

// ErrNotSupported is returned on systems without network namespaces.
var ErrNotSupported = errors.New("lab: network namespaces need linux")

// Topology says where the appliance sits between the client side and the
// backends.
type Topology int

const (
	// OneArmed: client - router - segment. The appliance has one interface,
	// on the server segment it shares with the router and the backends;
	// traffic enters and leaves through it.
	OneArmed Topology = iota
	// TwoArmed: the appliance has a client-side interface on a link of its
	// own to the router (the uplink) and a server-side interface on the
	// backends' segment. The router is on the server segment as well, so
	// that DSR replies and direct client->backend traffic have a way back.
	TwoArmed
	// RoutedBackend is OneArmed with backends behind the router: the last
	// Options.Routed backends (one when Routed is 0) sit on a segment of
	// their own that only the router reaches, so the appliance talks to
	// them through the router and to the others on its own segment.
	RoutedBackend
)

func (t Topology) String() string {
	switch t {
	case OneArmed:
		return "one-armed"
	case TwoArmed:
		return "two-armed"
	case RoutedBackend:
		return "routed-backend"
	}
	return fmt.Sprintf("Topology(%d)", int(t))
}

// Segment names, as found in Link.Segment.
const (
	SegmentClient = "client" // client <-> router, a veth pair
	SegmentUplink = "uplink" // router <-> appliance client side (TwoArmed), a veth pair
	SegmentServer = "server" // bridge: router, appliance (server side), backends
	SegmentRouted = "routed" // bridge: router, backends behind it
)

// The address plan. Everything is in 198.18.0.0/15 (RFC 2544 benchmarking
// space); nothing in a lab has a route out of it.
//
//	198.19.0.0/24  client segment: router .1, client .2
//	198.18.0.0/24  server segment: router .1, appliance .2, backends .11 up
//	198.18.1.0/24  VIPs: routed by the router to the appliance, on no interface
//	198.18.2.0/24  SNAT addresses: routed to the appliance, on no interface
//	198.18.3.0/24  uplink (TwoArmed): router .1, appliance .2
//	198.18.4.0/24  routed segment: router .1, backends .11 up
//
// Backend i has host number 11+i on whichever segment it sits.
var (
	// VIPRange holds the lab's VIPs. Do not modify.
	VIPRange = netip.MustParsePrefix("198.18.1.0/24")
	// SNATRange holds the appliance's SNAT (and IPIP source) addresses.
	// Do not modify.
	SNATRange = netip.MustParsePrefix("198.18.2.0/24")

	labSpace   = netip.MustParsePrefix("198.18.0.0/15")
	defaultVIP = netip.MustParseAddr("198.18.1.1")
	clientNet  = netip.MustParsePrefix("198.19.0.0/24")
	serverNet  = netip.MustParsePrefix("198.18.0.0/24")
	uplinkNet  = netip.MustParsePrefix("198.18.3.0/24")
	routedNet  = netip.MustParsePrefix("198.18.4.0/24")
)

// Limits on Options.
const (
	MaxBackends = 64 // backend host numbers .11 to .74, interface names stay <= 15 bytes
	MaxQueues   = 16 // per veth, each direction
	MaxNameLen  = 8  // Options.Name; with "-eth0" or "-b63-0" an ifname stays <= 15 bytes
)

// Options describe a lab. The zero value is a valid one-armed lab with
// three backends, NAT (no VIP on the backends), MTU 1500 on the client side
// and 1520 on the server side, one queue per appliance interface, and
// servers on ports 80 (HTTP), 443 (HTTPS) and 7 (UDP echo).
type Options struct {
	// Name prefixes every namespace ("<Name>-router") and interface
	// ("<Name>-eth0") of the lab: 1 to 8 bytes of [a-z0-9], starting with a
	// letter. Empty picks "cv" and 4 random hex digits that no namespace in
	// /run/netns uses yet, so parallel tests do not collide.
	Name     string
	Topology Topology
	// Backends is the number of backend hosts, 1 to MaxBackends; 0 means 3.
	Backends int
	// Routed is how many backends (the last ones) sit behind the router
	// rather than on the appliance's segment. Any topology; RoutedBackend
	// makes 0 mean 1.
	Routed int
	// DSR puts the VIP on each backend's loopback and sets arp_ignore=1
	// and arp_announce=2, so the backends accept traffic for the VIP and
	// answer the client directly, without answering ARP for it.
	DSR bool
	// VIP is the service address; it must be in VIPRange. Zero means
	// 198.18.1.1. The router routes all of VIPRange to the appliance.
	VIP netip.Addr
	// ClientMTU is the MTU of the client segment and the uplink; 0 means
	// 1500. ServerMTU is the MTU of every backend-side link (the server and
	// routed segments, the appliance's server side); 0 means the least it
	// may be, the larger of 1520 and ClientMTU+20, so that a full-size
	// packet encapsulated in IPIP (20 more bytes) reaches a backend.
	ClientMTU, ServerMTU int
	// ApplianceQueues is the number of rx and tx queues of each appliance
	// interface and of its peer, 1 to MaxQueues; 0 means 1.
	ApplianceQueues int
	// Ports of the servers Up starts on every backend (all addresses,
	// so the VIP too in DSR); 0 means 80, 443 and 7.
	HTTPPort, HTTPSPort, UDPPort uint16
	// NoServers leaves the backends without servers.
	NoServers bool
	// Pair adds a second appliance, Lab.Peer (198.18.0.3), on the server
	// segment next to the first, for an HA pair (one-armed only). The
	// router and the backends then reach VIPRange and SNATRange on-link,
	// asking ARP, so that whichever appliance answers for an address (the
	// VRRP master) receives its traffic.
	Pair bool
}

// normalize fills in defaults and reports every problem with o.
// An empty Name stays empty: Up picks a free one.
func (o Options) normalize() (Options, error) {
	var errs []error
	bad := func(field, format string, args ...any) {
		errs = append(errs, fmt.Errorf("lab: options.%s: %s", field, fmt.Sprintf(format, args...)))
	}
	if o.Name != "" && !validName(o.Name) {
		bad("name", "%q: want 1 to %d bytes of [a-z0-9] starting with a letter", o.Name, MaxNameLen)
	}
	switch o.Topology {
	case OneArmed, TwoArmed:
	case RoutedBackend:
		if o.Routed == 0 {
			o.Routed = 1
		}
	default:
		bad("topology", "unknown %v", o.Topology)
	}
	if o.Pair && o.Topology != OneArmed {
		bad("pair", "an HA pair needs the one-armed topology, not %v", o.Topology)
	}
	if o.Backends == 0 {
		o.Backends = 3
	}
	if o.Backends < 1 || o.Backends > MaxBackends {
		bad("backends", "%d: want 1 to %d", o.Backends, MaxBackends)
	}
	if o.Routed < 0 || o.Routed > o.Backends {
		bad("routed", "%d: want 0 to backends (%d)", o.Routed, o.Backends)
	}
	if !o.VIP.IsValid() {
		o.VIP = defaultVIP
	}
	if !VIPRange.Contains(o.VIP) {
		bad("vip", "%v: not in %v", o.VIP, VIPRange)
	}
	if o.ClientMTU == 0 {
		o.ClientMTU = 1500
	}
	if o.ClientMTU < 576 || o.ClientMTU > 9000 {
		bad("clientMTU", "%d: want 576 to 9000", o.ClientMTU)
	}
	minServer := max(1520, o.ClientMTU+20) // room for an IPIP header
	if o.ServerMTU == 0 {
		o.ServerMTU = minServer
	}
	if o.ServerMTU < minServer || o.ServerMTU > 9020 {
		bad("serverMTU", "%d: want %d (room for an IPIP header on a full-size packet) to 9020", o.ServerMTU, minServer)
	}
	if o.ApplianceQueues == 0 {
		o.ApplianceQueues = 1
	}
	if o.ApplianceQueues < 1 || o.ApplianceQueues > MaxQueues {
		bad("applianceQueues", "%d: want 1 to %d", o.ApplianceQueues, MaxQueues)
	}
	if o.HTTPPort == 0 {
		o.HTTPPort = 80
	}
	if o.HTTPSPort == 0 {
		o.HTTPSPort = 443
	}
	if o.UDPPort == 0 {
		o.UDPPort = 7
	}
	if o.HTTPPort == o.HTTPSPort {
		bad("httpsPort", "%d: same as httpPort", o.HTTPSPort)
	}
	return o, errors.Join(errs...)
}

func validName(s string) bool {
	if len(s) < 1 || len(s) > MaxNameLen || s[0] < 'a' || s[0] > 'z' {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if (c < 'a' || c > 'z') && (c < '0' || c > '9') {
			return false
		}
	}
	return true
}

// Lab is a set of network namespaces wired as one Topology, made by Up and
// removed by Down (or, after a crash, by Cleanup).
//
// The exported fields are set by Up and read-only afterwards; Down may be
// called from any goroutine, once or many times. Using a Host after Down
// returns errors.
type Lab struct {
	Name     string // the prefix of every namespace and interface
	Topology Topology
	VIP      netip.Addr   // routed to the appliance, on no appliance interface
	SNAT     netip.Prefix // SNATRange: routed to the appliance, on no interface

	Client    *Host
	Router    *Host
	Appliance *Host
	Backends  []*Host
	// Peer is the second appliance of an HA pair (Options.Pair); nil
	// otherwise.
	Peer *Host
	// Switch holds the bridges of the server and routed segments. It has no
	// addresses; its ports carry the name of the host they lead to.
	Switch *Host

	// ClientSide and ServerSide are the appliance's interfaces toward the
	// router and toward the backends: the same link when one-armed.
	ClientSide, ServerSide *Link

	opt Options

	mu      sync.Mutex
	created []*Host // namespaces made so far, in order; Down empties it
}

// Hosts returns every host of the lab: client, router, appliance, switch,
// then the backends, then the peer appliance if there is one.
func (l *Lab) Hosts() []*Host {
	hs := []*Host{l.Client, l.Router, l.Appliance, l.Switch}
	hs = append(hs, l.Backends...)
	if l.Peer != nil {
		hs = append(hs, l.Peer)
	}
	return hs
}

// Gateway returns the router's interface on the appliance's client side:
// the next hop, IP and MAC, for the appliance's traffic toward clients.
// (Toward backends behind the router, in TwoArmed, the next hop is the
// router's server-segment interface instead.)
func (l *Lab) Gateway() *Link {
	if l.Topology == TwoArmed {
		return l.Router.LinkOn(SegmentUplink)
	}
	return l.Router.LinkOn(SegmentServer)
}

// Options returns the options the lab was made with, defaults filled in.
func (l *Lab) Options() Options { return l.opt }

// Host is one network namespace of a lab: a named namespace (as made by
// `ip netns add`, so `ip netns exec <Name> ...` works on it) with its
// interfaces.
//
// Fields are set by Up and read-only afterwards. The methods are safe for
// concurrent use, but none may race with Lab.Down.
type Host struct {
	Name string // the namespace name: /run/netns/<Name>
	// Role is "client", "router", "appliance", "switch" or "b<i>" for
	// backend i; servers started by Up answer with it as their name.
	Role string
	// NS is an open handle on the namespace, closed by Lab.Down.
	NS netns.NsHandle
	// Links are the host's interfaces in creation order (loopback not
	// included). Links[0] is the primary one.
	Links []*Link
	// Addr and MAC are those of Links[0]; Addr is zero on the switch.
	Addr netip.Addr
	MAC  net.HardwareAddr
	// CertPEM is the certificate of the HTTPS server Up started on a
	// backend; nil otherwise.
	CertPEM []byte

	mu    sync.Mutex
	stops []func() // servers started on the host, stopped by Lab.Down
}

// Link is one interface of a Host, one end of a veth pair.
type Link struct {
	Name    string // interface name in the host's namespace
	Index   int    // interface index in the host's namespace
	Segment string // SegmentClient, SegmentUplink, SegmentServer or SegmentRouted
	// Addr is the interface address with its prefix length; zero on
	// switch ports.
	Addr   netip.Prefix
	MAC    net.HardwareAddr
	MTU    int
	Queues int // rx queues = tx queues, on both ends of the pair
	// Peer is the name of the other end of the pair, in the namespace
	// PeerHost (for a host link to the server or routed segment: a port of
	// the switch's bridge).
	Peer, PeerHost string
}

// LinkOn returns the host's link on the named segment, or nil.
func (h *Host) LinkOn(segment string) *Link {
	for _, l := range h.Links {
		if l.Segment == segment {
			return l
		}
	}
	return nil
}

// track records a server's stop function for Lab.Down.
func (h *Host) track(stop func()) {
	h.mu.Lock()
	h.stops = append(h.stops, stop)
	h.mu.Unlock()
}

// stopServers stops every server started on h.
func (h *Host) stopServers() {
	h.mu.Lock()
	stops := h.stops
	h.stops = nil
	h.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
}
