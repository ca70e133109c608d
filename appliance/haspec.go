package appliance

import (
	"encoding/hex"
	"fmt"
	"net/netip"
	"reflect"
	"slices"
	"time"
)

// HASpec makes the appliance one member of an HA pair: VRRP groups
// (RFC 5798 version 3) decide which member owns which VIPs and SNAT
// addresses, and connection sync streams the master's flows to the
// backup so that established connections survive a failover. The names
// follow keepalived's where they fit.
type HASpec struct {
	// Interface VRRP runs on; empty means the client-side interface.
	Interface string
	// UnicastPeers, when set, sends advertisements to these addresses
	// instead of the multicast group 224.0.0.18 (keepalived's
	// unicast_peer), for networks without multicast.
	UnicastPeers []netip.Addr
	// Groups are the virtual routers (keepalived's vrrp_instance). Two
	// groups with opposite priorities on the two members make an
	// active/active pair.
	Groups []VRRPGroupSpec
	// Sync, when set, streams connection state to the peer.
	Sync *SyncSpec
}

// VRRPGroupSpec is one virtual router.
type VRRPGroupSpec struct {
	Name            string
	VirtualRouterID uint8
	// Priority is 1..254 (255 is the address owner, which Culvert never
	// is: VIPs are never kernel addresses). The higher one is master.
	Priority uint8
	// AdvertInt is the advertisement interval, 10ms to 40.95s in steps of
	// 10ms; 0 means 1s.
	AdvertInt time.Duration
	// NoPreempt keeps a master of lower priority in place when a higher
	// one returns. PreemptDelay holds preemption off for that long after
	// this node starts seeing a lower-priority master.
	NoPreempt    bool
	PreemptDelay time.Duration
	// VirtualIPAddress lists the VIPs the group owns; empty means every
	// VIP of the services (only when there is one group).
	VirtualIPAddress []netip.Addr
	// LocalAddrs are the SNAT addresses that move with the group (nat
	// replies come back to them); empty means every local address (only
	// when there is one group).
	LocalAddrs []netip.Addr
	// TrackInterface lowers the priority by Weight while the interface is
	// down; weight 0 gives the group up entirely (keepalived's fault
	// state) until it is up again.
	TrackInterface []TrackSpec
	// TrackService lowers the priority by Weight while every backend of
	// the named service is down; weight 0 gives the group up.
	TrackService []TrackSpec
}

// TrackSpec is one tracked interface or service and its weight.
type TrackSpec struct {
	Name   string
	Weight int
}

// SyncSpec configures connection sync with the peer: UDP datagrams,
// sequenced per boot and authenticated with HMAC-SHA256 under Key.
type SyncSpec struct {
	Listen netip.AddrPort // this node's sync address (a kernel address)
	Peer   netip.AddrPort // the peer's
	// Key is the pre-shared key, at least 32 hex digits (16 bytes). Both
	// members must have the same.
	Key string
	// Refresh is how often the whole table is resent, so that the peer's
	// timers of long-lived idle flows agree with ours; 0 means 30s.
	Refresh time.Duration
}

// DefaultSyncRefresh is SyncSpec.Refresh's default.
const DefaultSyncRefresh = 30 * time.Second

// KeyBytes returns the decoded pre-shared key.
func (s *SyncSpec) KeyBytes() ([]byte, error) {
	k, err := hex.DecodeString(s.Key)
	if err != nil {
		return nil, fmt.Errorf("not hex digits: %v", err)
	}
	if len(k) < 16 {
		return nil, fmt.Errorf("%d bytes, want at least 16 (32 hex digits)", len(k))
	}
	return k, nil
}

// validateHA reports the problems of s.HA through add.
func (s *Spec) validateHA(add func(string, ...any)) {
	h := s.HA
	if h == nil {
		return
	}
	if h.Interface != "" && len(s.Interfaces) > 0 {
		found := false
		for _, ifc := range s.Interfaces {
			found = found || ifc.Name == h.Interface
		}
		if !found {
			add("ha.interface: %q is not one of the dataplane's interfaces", h.Interface)
		}
	}
	for i, p := range h.UnicastPeers {
		if !p.Is4() {
			add("ha.unicast_peer[%d]: %v is not an IPv4 address", i, p)
		}
	}
	if len(h.Groups) == 0 {
		add("ha.vrrp_instances: none: an HA pair needs at least one group")
	}
	vips := map[netip.Addr]bool{}
	for _, sv := range s.Services {
		vips[sv.VIP] = true
	}
	locals := map[netip.Addr]bool{}
	for _, a := range s.LocalAddrs {
		locals[a] = true
	}
	ids := map[uint8]int{}
	vipOwner := map[netip.Addr]int{}
	localOwner := map[netip.Addr]int{}
	svcNames := map[string]bool{}
	for _, sv := range s.Services {
		if sv.Name != "" {
			svcNames[sv.Name] = true
		}
	}
	for i, g := range h.Groups {
		at := fmt.Sprintf("ha.vrrp_instances[%d]", i)
		if g.VirtualRouterID == 0 {
			add("%s.virtual_router_id: missing (1..255)", at)
		} else if j, dup := ids[g.VirtualRouterID]; dup {
			add("%s.virtual_router_id: %d is vrrp_instances[%d]'s too", at, g.VirtualRouterID, j)
		} else {
			ids[g.VirtualRouterID] = i
		}
		if g.Priority < 1 || g.Priority > 254 {
			add("%s.priority: %d is outside 1..254 (255 means owning the addresses, which an appliance never does)", at, g.Priority)
		}
		if g.AdvertInt != 0 && (g.AdvertInt < 10*time.Millisecond || g.AdvertInt > 40950*time.Millisecond || g.AdvertInt%(10*time.Millisecond) != 0) {
			add("%s.advert_int: %v: want 10ms to 40.95s in steps of 10ms", at, g.AdvertInt)
		}
		if g.PreemptDelay < 0 || g.PreemptDelay > time.Hour {
			add("%s.preempt_delay: %v is outside 0..1h", at, g.PreemptDelay)
		}
		if len(h.Groups) > 1 && len(g.VirtualIPAddress) == 0 {
			add("%s.virtual_ipaddress: empty: with several groups each lists its VIPs", at)
		}
		// claim gives group i the addresses of its field, each one known
		// and in no other group.
		claim := func(field string, addrs []netip.Addr, known map[netip.Addr]bool, unknown string, owner map[netip.Addr]int) {
			for j, a := range addrs {
				if !known[a] {
					add("%s.%s[%d]: %v %s", at, field, j, a, unknown)
					continue
				}
				if k, dup := owner[a]; dup {
					add("%s.%s[%d]: %v is in vrrp_instances[%d] too", at, field, j, a, k)
				}
				owner[a] = i
			}
		}
		claim("virtual_ipaddress", g.VirtualIPAddress, vips, "is no service's VIP", vipOwner)
		if n := len(s.GroupVIPs(i)); n > 255 {
			add("%s.virtual_ipaddress: %d VIPs: a VRRP advertisement carries at most 255 (split them over several groups)", at, n)
		}
		claim("local_addrs", g.LocalAddrs, locals, "is not one of local_addrs", localOwner)
		for j, t := range g.TrackInterface {
			if t.Name == "" || len(t.Name) > 15 {
				add("%s.track_interface[%d].name: %q is not an interface name", at, j, t.Name)
			}
			if t.Weight < 0 || t.Weight > 254 {
				add("%s.track_interface[%d].weight: %d is outside 0..254", at, j, t.Weight)
			}
		}
		for j, t := range g.TrackService {
			if !svcNames[t.Name] {
				add("%s.track_service[%d].name: %q is no service's name", at, j, t.Name)
			}
			if t.Weight < 0 || t.Weight > 254 {
				add("%s.track_service[%d].weight: %d is outside 0..254", at, j, t.Weight)
			}
		}
	}
	if len(h.Groups) > 1 {
		for i, g := range h.Groups {
			if len(g.LocalAddrs) > 0 {
				continue
			}
			for _, sv := range s.Services {
				if sv.Mode == "nat" && slices.Contains(g.VirtualIPAddress, sv.VIP) {
					add("ha.vrrp_instances[%d].local_addrs: empty, but its VIP %v has nat services: with several groups each gives its nat services SNAT addresses of its own", i, sv.VIP)
					break
				}
			}
		}
		for a := range vips {
			if _, ok := vipOwner[a]; !ok {
				add("ha.vrrp_instances: VIP %v is in no group: with several groups every VIP is in one", a)
			}
		}
		for a := range locals {
			if _, ok := localOwner[a]; !ok {
				add("ha.vrrp_instances: local address %v is in no group: with several groups every local address is in one", a)
			}
		}
	}
	if sy := h.Sync; sy != nil {
		if !sy.Listen.IsValid() || !sy.Listen.Addr().Is4() || sy.Listen.Port() == 0 {
			add("ha.sync.listen: %v: want an IPv4 address and port", sy.Listen)
		}
		if !sy.Peer.IsValid() || !sy.Peer.Addr().Is4() || sy.Peer.Port() == 0 {
			add("ha.sync.peer: %v: want an IPv4 address and port", sy.Peer)
		}
		if _, err := sy.KeyBytes(); err != nil {
			add("ha.sync.key: %v", err)
		}
		if sy.Refresh < 0 || (sy.Refresh != 0 && sy.Refresh < time.Second) {
			add("ha.sync.refresh: %v: want at least 1s", sy.Refresh)
		}
	}
}

// GroupVIPs returns the VIPs group i owns: its list, or every service VIP
// when it lists none.
func (s *Spec) GroupVIPs(i int) []netip.Addr {
	if g := s.HA.Groups[i]; len(g.VirtualIPAddress) > 0 {
		return g.VirtualIPAddress
	}
	var out []netip.Addr
	seen := map[netip.Addr]bool{}
	for _, sv := range s.Services {
		if !seen[sv.VIP] {
			seen[sv.VIP] = true
			out = append(out, sv.VIP)
		}
	}
	return out
}

// GroupLocals returns the SNAT addresses group i owns: its list, or every
// local address when there is one group and it lists none.
func (s *Spec) GroupLocals(i int) []netip.Addr {
	if g := s.HA.Groups[i]; len(g.LocalAddrs) > 0 || len(s.HA.Groups) > 1 {
		return g.LocalAddrs
	}
	return s.LocalAddrs
}

// groupAddrs is what VRRP group i owns under s: its VIPs, which its
// advertisements carry, and its SNAT addresses.
type groupAddrs struct {
	vrid   uint8
	vips   []netip.Addr
	locals []netip.Addr
}

// all is the group's addresses, VIPs first.
func (g groupAddrs) all() []netip.Addr {
	return append(slices.Clone(g.vips), g.locals...)
}

// groupAddrChanges returns the groups of spec that own other VIPs or local
// addresses than under old (a lone group's are every VIP and every local
// address, so a new service can change them). spec and old must have the
// same groups (priorityChanges says so).
func groupAddrChanges(spec, old *Spec) []groupAddrs {
	if spec.HA == nil || old.HA == nil {
		return nil
	}
	var out []groupAddrs
	for i, g := range spec.HA.Groups {
		vips, locals := spec.GroupVIPs(i), spec.GroupLocals(i)
		if !slices.Equal(vips, old.GroupVIPs(i)) || !slices.Equal(locals, old.GroupLocals(i)) {
			out = append(out, groupAddrs{vrid: g.VirtualRouterID, vips: vips, locals: locals})
		}
	}
	return out
}

// prioChange is a VRRP group's new priority.
type prioChange struct{ vrid, prio uint8 }

// priorityChanges compares the ha sections of a reload: ok is true when
// they are alike but for the groups' priorities, which it returns where
// they changed, and the groups' addresses (see groupAddrChanges).
func priorityChanges(spec, old *HASpec) (changes []prioChange, ok bool) {
	if spec == nil || old == nil {
		return nil, spec == old
	}
	if len(spec.Groups) != len(old.Groups) {
		return nil, false
	}
	same := *spec
	same.Groups = slices.Clone(spec.Groups)
	for i := range same.Groups {
		if p := same.Groups[i].Priority; p != old.Groups[i].Priority {
			changes = append(changes, prioChange{vrid: same.Groups[i].VirtualRouterID, prio: p})
			same.Groups[i].Priority = old.Groups[i].Priority
		}
		same.Groups[i].VirtualIPAddress = old.Groups[i].VirtualIPAddress
		same.Groups[i].LocalAddrs = old.Groups[i].LocalAddrs
	}
	if !reflect.DeepEqual(fileHAOf(&same), fileHAOf(old)) {
		return nil, false
	}
	return changes, true
}
