package dataplane

import (
	"bytes"
	"cmp"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/culvert-lb/culvert/dataplane/sched"
	"github.com/culvert-lb/culvert/internal/header"
)

// Mode is a service's forwarding mode.
type Mode uint8

// Forwarding modes.
const (
	ModeNAT  Mode = iota + 1 // full NAT: DNAT to the backend, SNAT to a local address
	ModeDSR                  // L2 direct server return: only the destination MAC changes
	ModeIPIP                 // DSR over IP-in-IP: the frame is encapsulated to the backend
)

func (m Mode) String() string {
	switch m {
	case ModeNAT:
		return "nat"
	case ModeDSR:
		return "dsr"
	case ModeIPIP:
		return "ipip"
	}
	return fmt.Sprintf("mode(%d)", uint8(m))
}

// ParseMode parses "nat", "dsr" or "ipip".
func ParseMode(s string) (Mode, error) {
	switch s {
	case "nat":
		return ModeNAT, nil
	case "dsr":
		return ModeDSR, nil
	case "ipip":
		return ModeIPIP, nil
	}
	return 0, fmt.Errorf("unknown forwarding mode %q (want nat, dsr or ipip)", s)
}

// Backend is a real server as the dataplane sees it. Its index in
// Config.Backends is its ID: the management plane keeps IDs stable across
// Apply so that live flows keep pointing at the same server.
type Backend struct {
	Addr [4]byte
	// Port is where nat sends the flow. dsr and ipip cannot change ports:
	// there it is zero or the service port.
	Port uint16
	// Weight 0 drains: existing flows continue, no new ones.
	Weight uint32
	// MAC is the next hop toward the backend (itself on the same segment, a
	// router otherwise). Zero means not resolved: its flows drop, counted.
	MAC header.MAC
	// Link is the dataplane link (index into Config.Links) the backend is
	// reached through: frames to it leave by that link, from its MAC.
	Link uint8
	// Removed marks an ID whose server left the configuration; its flows
	// drop with DropBackendGone.
	Removed bool
}

// Service is a virtual service: (VIP, protocol, port or port range) and
// its pool. Its index in Config.Services is its ID, kept stable by the
// management plane.
type Service struct {
	VIP   [4]byte
	Proto uint8 // header.ProtoTCP or header.ProtoUDP
	Port  uint16
	// PortEnd, when above Port, makes the service a range: it owns every
	// destination port Port..PortEnd. Zero (or Port) is a single port.
	// In nat mode a backend with Port 0 receives the flow on the client's
	// destination port (port-preserving); a backend with a Port receives
	// every port of the range on that one port. dsr and ipip never change
	// ports, so their backends' Port must be zero.
	PortEnd uint16
	Mode    Mode
	// Scheduler picks backends for new flows.
	Scheduler sched.Kind
	// Backends lists the IDs of the pool's members.
	Backends []uint32
	// Persistence, when non-zero, sends every new flow from one client
	// address to the backend its previous flow used, until the client has
	// been idle this long (IPVS persistence; whole seconds).
	Persistence time.Duration
	// Locals, when set, restricts the service's full-NAT source
	// addresses to these indexes of Config.LocalAddrs; empty means every
	// local address. An active/active HA pair gives each VRRP group's
	// services the group's own SNAT addresses, so that replies come back
	// to the box that owns the flow.
	Locals []uint16
	// Removed marks an ID whose service left the configuration.
	Removed bool
}

// checkOverlaps reports services whose (VIP, protocol, ports) overlap,
// in O(n log n): sorted by start port, each service is compared with the
// one reaching furthest before it on the same VIP and protocol.
func (c *Config) checkOverlaps(add func(string, ...any)) {
	order := make([]int, 0, len(c.Services))
	for i := range c.Services {
		if !c.Services[i].Removed {
			order = append(order, i)
		}
	}
	slices.SortFunc(order, func(a, b int) int {
		x, y := &c.Services[a], &c.Services[b]
		return cmp.Or(bytes.Compare(x.VIP[:], y.VIP[:]), cmp.Compare(x.Proto, y.Proto), cmp.Compare(x.Port, y.Port), cmp.Compare(a, b))
	})
	reach := -1 // the service reaching furthest in the current group
	for _, i := range order {
		s := &c.Services[i]
		if reach >= 0 {
			r := &c.Services[reach]
			if r.VIP == s.VIP && r.Proto == s.Proto && s.Port <= r.LastPort() {
				hi, lo := max(i, reach), min(i, reach)
				if s.PortEnd == 0 && r.PortEnd == 0 {
					add("services[%d]: same VIP, protocol and port as services[%d]", hi, lo)
				} else {
					add("services[%d]: ports overlap services[%d]", hi, lo)
				}
			}
			if r.VIP != s.VIP || r.Proto != s.Proto || s.LastPort() > r.LastPort() {
				reach = i
			}
			continue
		}
		reach = i
	}
}

// LastPort is the last destination port s owns: PortEnd for a range,
// Port otherwise.
func (s *Service) LastPort() uint16 {
	return max(s.Port, s.PortEnd)
}

// MaxLinks is the most dataplane links (interfaces) a dataplane has.
const MaxLinks = 8

// Link is one dataplane link as the forwarding code sees it: an interface
// the appliance receives on and sends out of, through one queue per worker.
// The zero Link has no address.
type Link struct {
	// MAC is the interface's own address: the source of every frame sent
	// out of it.
	MAC header.MAC
	// MTU of the link, which bounds IP-in-IP packets sent out of it; zero
	// means Config.MTU.
	MTU int
}

// Config is everything the dataplane needs to forward, already resolved by
// the management plane: addresses, link-layer next hops, pools. Apply
// compiles it into read-only tables that workers see through an atomic
// pointer. A Config must not be changed after it is passed to Apply.
//
// # Links
//
// One-armed, the appliance has one link: clients and backends are reached
// through the same interface, and every frame leaves by the queue it came
// in on. Two-armed, it has a link toward clients (ClientLink, where Gateway
// is) and one or more toward backends (Backend.Link). Each frame leaves by
// the link its verdict names:
//
//	verdict                                                 leaves by
//	nat toward the backend, dsr, ipip                       the backend's link
//	ICMP error forwarded to a backend                       the backend's link
//	nat reply toward the client, ICMP error to the client   ClientLink
//	ARP reply, echo reply, fragmentation-needed             the link it came in on
//
// (fragmentation-needed answers the frame's sender at its source MAC, which
// is only reachable where the frame came from.)
type Config struct {
	// MAC is the appliance's own address on link 0, which one-armed is its
	// only link. With Links set it must be zero or Links[0].MAC.
	MAC header.MAC
	// Links are the dataplane's links, indexed as each worker's queues
	// (Options.Links of them). Empty means every link has address MAC and
	// MTU (one-armed: one link).
	Links []Link
	// ClientLink is the link toward clients: nat replies leave by it.
	ClientLink uint8
	// Gateway is the next hop toward clients, on ClientLink: nat replies go
	// there.
	Gateway header.MAC
	// LocalAddrs are the full-NAT source addresses. They are never the
	// kernel's addresses: the dataplane owns them.
	LocalAddrs [][4]byte
	// EncapSrc is the outer source address of IP-in-IP packets.
	EncapSrc [4]byte
	// MTU of every link whose Link.MTU is zero; IP-in-IP packets that
	// would exceed the MTU of the link they leave by are refused with ICMP
	// fragmentation-needed. Zero means 1500.
	MTU int
	// HashKey keys the flow hash and the Maglev permutations, so that two
	// appliances with the same configuration pick the same backend for a
	// flow.
	HashKey sched.HashKey
	// MaglevSize is the Maglev table size, a prime; zero means 65537.
	MaglevSize int
	// AnswerVIPs makes the dataplane answer ARP requests and ICMP echo for
	// VIPs and local addresses (the active member of an HA pair does; the backup does not).
	AnswerVIPs bool

	Services []Service
	Backends []Backend
}

// Validate reports every problem in c, joined.
func (c *Config) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.MTU != 0 && (c.MTU < 576 || c.MTU > 9216) {
		add("mtu: %d is outside 576..9216", c.MTU)
	}
	if c.MaglevSize != 0 {
		if err := sched.CheckMaglevSize(c.MaglevSize); err != nil {
			add("maglev size: %d is not prime, or above %d", c.MaglevSize, sched.MaxMaglevSize)
		}
	}
	nlinks := MaxLinks // without Links, Apply checks against Options.Links
	if len(c.Links) > 0 {
		nlinks = len(c.Links)
		if c.MAC != (header.MAC{}) && c.MAC != c.Links[0].MAC {
			add("mac: %x differs from links[0].mac %x", c.MAC[:], c.Links[0].MAC[:])
		}
	}
	if len(c.Links) > MaxLinks {
		add("links: %d, at most %d", len(c.Links), MaxLinks)
	}
	for i, l := range c.Links {
		if l.MTU != 0 && (l.MTU < 576 || l.MTU > 9216) {
			add("links[%d].mtu: %d is outside 576..9216", i, l.MTU)
		}
	}
	if int(c.ClientLink) >= nlinks {
		add("client link: %d, but there are %d links", c.ClientLink, nlinks)
	}
	for i, b := range c.Backends {
		if !b.Removed && int(b.Link) >= nlinks {
			add("backends[%d].link: %d, but there are %d links", i, b.Link, nlinks)
		}
	}
	locals := map[[4]byte]bool{}
	for i, a := range c.LocalAddrs {
		if locals[a] {
			add("local_addrs[%d]: %v listed twice", i, ip4(a))
		}
		locals[a] = true
	}
	c.checkOverlaps(add)
	for i, s := range c.Services {
		if s.Removed {
			continue
		}
		if s.PortEnd != 0 && s.PortEnd < s.Port {
			add("services[%d]: port end %d is below port %d", i, s.PortEnd, s.Port)
		}
		if s.Proto != header.ProtoTCP && s.Proto != header.ProtoUDP {
			add("services[%d]: protocol %d is neither tcp nor udp", i, s.Proto)
		}
		if s.Port == 0 {
			add("services[%d]: port 0", i)
		}
		switch s.Mode {
		case ModeNAT:
			if len(c.LocalAddrs) == 0 {
				add("services[%d]: nat mode needs at least one local address", i)
			}
		case ModeDSR, ModeIPIP:
		default:
			add("services[%d]: no forwarding mode", i)
		}
		if locals[s.VIP] {
			add("services[%d]: VIP %v is also a local address", i, ip4(s.VIP))
		}
		for j, li := range s.Locals {
			if int(li) >= len(c.LocalAddrs) {
				add("services[%d].locals[%d]: no local address %d", i, j, li)
			}
		}
		if s.Persistence < 0 || s.Persistence > 24*time.Hour {
			add("services[%d]: persistence %v is outside 0..24h", i, s.Persistence)
		}
		if s.Mode == ModeIPIP && c.EncapSrc == ([4]byte{}) {
			add("services[%d]: ipip mode needs an encapsulation source address", i)
		}
		for j, id := range s.Backends {
			if int(id) >= len(c.Backends) || c.Backends[id].Removed {
				add("services[%d].backends[%d]: no backend with id %d", i, j, id)
				continue
			}
			b := c.Backends[id]
			if s.Mode != ModeNAT && b.Port != 0 && (b.Port != s.Port || s.LastPort() != s.Port) {
				add("services[%d].backends[%d]: %s mode cannot change the port (%d -> %d)", i, j, s.Mode, s.Port, b.Port)
			}
		}
	}
	return errors.Join(errs...)
}

type ip4 [4]byte

func (a ip4) String() string { return fmt.Sprintf("%d.%d.%d.%d", a[0], a[1], a[2], a[3]) }
