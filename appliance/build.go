package appliance

import (
	"fmt"
	"maps"
	"net/netip"
	"slices"

	"github.com/culvert-lb/culvert/dataplane"
	"github.com/culvert-lb/culvert/dataplane/sched"
	"github.com/culvert-lb/culvert/internal/header"
)

// Links are the link-layer facts a Spec does not hold: the appliance's own
// MAC on each dataplane interface, the next hop toward clients, and the
// next hop toward each backend with the interface it is reached through.
// The AF_XDP appliance learns them from its interfaces and the kernel's
// routing and neighbour tables. The zero Links is one-armed with nothing
// resolved.
type Links struct {
	// Self is the appliance's MAC on its one interface (one-armed), or on
	// Interfaces[0].
	Self    header.MAC
	Gateway header.MAC
	// Backend returns the next-hop MAC for a backend address; nil or a zero
	// MAC means unresolved.
	Backend func(netip.Addr) header.MAC

	// Interfaces are the dataplane links in Spec.Interfaces order: each
	// one's own MAC and MTU (zero: Spec.MTU). Empty means one-armed: one
	// link, with MAC Self.
	Interfaces []dataplane.Link
	// ClientLink is the index in Interfaces of the link toward clients,
	// where Gateway is.
	ClientLink uint8
	// BackendLink returns the index in Interfaces of the link a backend
	// address is reached through; nil means link 0.
	BackendLink func(netip.Addr) uint8
}

type backendKey struct {
	addr netip.Addr
	port uint16
}

type serviceKey struct {
	vip     netip.Addr
	proto   uint8
	port    uint16
	portEnd uint16
}

// Builder turns Specs into dataplane Configs, keeping the IDs of backends
// and services stable across builds: an ID, once given to a backend
// (address, port) or a service (VIP, protocol, port), stays its own, and a
// removed one is marked Removed rather than reused. Not safe for concurrent
// use.
type Builder struct {
	backends map[backendKey]uint32
	services map[serviceKey]uint32
	nb, ns   int
}

// NewBuilder returns a Builder with no IDs given yet.
func NewBuilder() *Builder {
	return &Builder{backends: map[backendKey]uint32{}, services: map[serviceKey]uint32{}}
}

// Build resolves s. It does not change the Builder's IDs when it fails.
func (b *Builder) Build(s *Spec, l Links) (*dataplane.Config, error) {
	key, err := sched.ParseHashKey(s.HashKey)
	if err != nil {
		return nil, fmt.Errorf("hash_key: %w", err)
	}
	nbk := maps.Clone(b.backends)
	nsk := maps.Clone(b.services)
	nb, ns := b.nb, b.ns
	c := &dataplane.Config{MAC: l.Self, Gateway: l.Gateway, MTU: s.MTU, MaglevSize: s.MaglevSize, HashKey: key, AnswerVIPs: true,
		ClientLink: l.ClientLink}
	if len(l.Interfaces) > 0 {
		c.Links = append([]dataplane.Link(nil), l.Interfaces...)
		c.MAC = l.Interfaces[0].MAC
	}
	for _, a := range s.LocalAddrs {
		c.LocalAddrs = append(c.LocalAddrs, a.As4())
	}
	if s.EncapSource.Is4() {
		c.EncapSrc = s.EncapSource.As4()
	}
	usedB := map[uint32]bool{}
	usedS := map[uint32]bool{}
	type pending struct {
		id  uint32
		svc dataplane.Service
	}
	var svcs []pending
	for i := range s.Services {
		sv := &s.Services[i]
		proto, err := parseProto(sv.Protocol)
		if err != nil {
			return nil, fmt.Errorf("services[%d].protocol: %w", i, err)
		}
		mode, err := dataplane.ParseMode(sv.Mode)
		if err != nil {
			return nil, fmt.Errorf("services[%d].mode: %w", i, err)
		}
		kind := sched.KindMaglev
		if sv.Scheduler != "" {
			if kind, err = sched.ParseKind(sv.Scheduler); err != nil {
				return nil, fmt.Errorf("services[%d].scheduler: %w", i, err)
			}
		}
		sk := serviceKey{sv.VIP, proto, sv.Port, sv.PortEnd}
		if sv.PortEnd == sv.Port {
			sk.portEnd = 0 // a range of one port is that port
		}
		sid, ok := nsk[sk]
		if !ok {
			sid = uint32(ns)
			ns++
			nsk[sk] = sid
		}
		if usedS[sid] {
			return nil, fmt.Errorf("services[%d]: %v %s port %s is defined twice", i, sv.VIP, sv.Protocol, sv.ports())
		}
		usedS[sid] = true
		ds := dataplane.Service{VIP: sv.VIP.As4(), Proto: proto, Port: sv.Port, PortEnd: sv.PortEnd, Mode: mode, Scheduler: kind, Persistence: sv.Persistence,
			Locals: groupLocals(s, sv.VIP)}
		for j, be := range sv.Backends {
			bk := backendKey{be.Address, be.Port}
			bid, ok := nbk[bk]
			if !ok {
				bid = uint32(nb)
				nb++
				nbk[bk] = bid
			}
			for _, have := range ds.Backends {
				if have == bid {
					return nil, fmt.Errorf("services[%d].backends[%d]: %v port %d listed twice", i, j, be.Address, be.Port)
				}
			}
			ds.Backends = append(ds.Backends, bid)
			usedB[bid] = true
		}
		svcs = append(svcs, pending{sid, ds})
	}
	c.Backends = make([]dataplane.Backend, nb)
	for k, id := range nbk {
		be := dataplane.Backend{Addr: k.addr.As4(), Port: k.port, Removed: !usedB[id]}
		if l.Backend != nil && !be.Removed {
			be.MAC = l.Backend(k.addr)
		}
		if l.BackendLink != nil && !be.Removed {
			be.Link = l.BackendLink(k.addr)
		}
		c.Backends[id] = be
	}
	// Weights are per service in the Spec but per backend in the dataplane:
	// a backend listed by several services takes the weight of its last
	// listing.
	for i := range s.Services {
		for _, be := range s.Services[i].Backends {
			w := be.Weight
			if be.Disabled {
				w = 0
			}
			c.Backends[nbk[backendKey{be.Address, be.Port}]].Weight = w
		}
	}
	c.Services = make([]dataplane.Service, ns)
	for i := range c.Services {
		c.Services[i].Removed = true
	}
	for _, p := range svcs {
		c.Services[p.id] = p.svc
	}
	if err := c.Validate(); err != nil {
		return nil, err
	}
	b.backends, b.services, b.nb, b.ns = nbk, nsk, nb, ns
	return c, nil
}

// groupLocals returns, for an HA pair with several VRRP groups, the
// indexes in LocalAddrs of the SNAT addresses of the group that owns vip:
// a flow of that VIP takes its source address from them, so that the
// backend's replies reach the box that is master of the VIP. Nil (every
// local address) otherwise.
func groupLocals(s *Spec, vip netip.Addr) []uint16 {
	if s.HA == nil || len(s.HA.Groups) < 2 {
		return nil
	}
	for i, g := range s.HA.Groups {
		if !slices.Contains(g.VirtualIPAddress, vip) {
			continue
		}
		var out []uint16
		for _, a := range s.GroupLocals(i) {
			if j := slices.Index(s.LocalAddrs, a); j >= 0 {
				out = append(out, uint16(j))
			}
		}
		return out
	}
	return nil
}
