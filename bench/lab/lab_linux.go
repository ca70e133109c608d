//go:build linux

package lab

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"
)

// upTimeout bounds the wait for links to come up.
const upTimeout = 5 * time.Second

// Up makes a lab: its namespaces, bridges, veth pairs, addresses, routes
// and sysctls, all from Go through netlink, ioctl and /proc/sys (no
// iproute2 or ethtool needed), then starts the backends' servers. Nothing
// is made in the root namespace: each veth pair is created in one lab
// namespace with its peer made directly in another, and no lab namespace
// has a link to the machine's interfaces.
//
// On error Up removes whatever it made. A lab that outlives its process
// (a crash) is removed by Cleanup(name).
func Up(ctx context.Context, opt Options) (*Lab, error) {
	o, err := opt.normalize()
	if err != nil {
		return nil, err
	}
	if o.Name == "" {
		if o.Name, err = freeName(); err != nil {
			return nil, err
		}
	} else if names, err := listNamedNS(o.Name); err != nil {
		return nil, fmt.Errorf("lab %s: %w", o.Name, err)
	} else if len(names) > 0 {
		return nil, fmt.Errorf("lab %s: namespace %s exists (Cleanup(%q) removes leftovers)", o.Name, names[0], o.Name)
	}
	p := makePlan(o.Name, o)
	if err := p.check(); err != nil {
		return nil, fmt.Errorf("lab %s: plan: %w", o.Name, err)
	}
	l := &Lab{Name: o.Name, Topology: o.Topology, VIP: o.VIP, SNAT: SNATRange, opt: o}
	if err := l.build(ctx, p); err != nil {
		return nil, errors.Join(fmt.Errorf("lab %s: up: %w", o.Name, err), l.Down())
	}
	return l, nil
}

// freeName picks "cv" and 4 random hex digits that no namespace uses.
func freeName() (string, error) {
	for range 16 {
		var b [2]byte
		rand.Read(b[:])
		name := "cv" + hex.EncodeToString(b[:])
		names, err := listNamedNS(name)
		if err != nil {
			return "", fmt.Errorf("lab: %w", err)
		}
		if len(names) == 0 {
			return name, nil
		}
	}
	return "", errors.New("lab: no free name after 16 tries")
}

func (l *Lab) build(ctx context.Context, p *plan) error {
	hosts := make([]*Host, len(p.hosts))
	for i, ph := range p.hosts {
		if err := ctx.Err(); err != nil {
			return err
		}
		ns, err := createNamedNS(ph.ns)
		if err != nil {
			return err
		}
		hosts[i] = &Host{Name: ph.ns, Role: ph.role, NS: ns}
		l.mu.Lock()
		l.created = append(l.created, hosts[i])
		l.mu.Unlock()
	}
	l.Client, l.Router, l.Appliance, l.Switch = hosts[hClient], hosts[hRouter], hosts[hAppliance], hosts[hSwitch]
	l.Backends = hosts[hBackend0 : hBackend0+l.opt.Backends]
	if l.opt.Pair {
		l.Peer = hosts[len(hosts)-1]
	}

	// Sysctls before any interface exists, so that the "default" ones
	// reach every interface made later; then loopback.
	for i, ph := range p.hosts {
		err := hosts[i].Do(func() error {
			for _, s := range ph.sysctls {
				if err := writeSysctl(s.key, s.value); err != nil && !(s.optional && errors.Is(err, fs.ErrNotExist)) {
					return err
				}
			}
			lo, err := netlink.LinkByName("lo")
			if err != nil {
				return fmt.Errorf("lo: %w", err)
			}
			if err := netlink.LinkSetUp(lo); err != nil {
				return fmt.Errorf("lo up: %w", err)
			}
			for _, a := range ph.loAddrs {
				if err := netlink.AddrAdd(lo, nlAddr(a)); err != nil {
					return fmt.Errorf("lo: add %v: %w", a, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}

	bridges := map[string]int{} // name -> index in the switch
	err := l.Switch.Do(func() error {
		for _, b := range p.bridges {
			attrs := netlink.NewLinkAttrs()
			attrs.Name, attrs.MTU = b.name, b.mtu
			if err := netlink.LinkAdd(&netlink.Bridge{LinkAttrs: attrs}); err != nil {
				return fmt.Errorf("bridge %s: %w", b.name, err)
			}
			link, err := netlink.LinkByName(b.name)
			if err != nil {
				return fmt.Errorf("bridge %s: %w", b.name, err)
			}
			bridges[b.name] = link.Attrs().Index
		}
		return nil
	})
	if err != nil {
		return err
	}

	for _, v := range p.veths {
		if err := ctx.Err(); err != nil {
			return err
		}
		err := hosts[v.a.host].Do(func() error { return addVeth(v.a, v.b, hosts[v.b.host].NS) })
		if err != nil {
			return fmt.Errorf("veth %s/%s - %s/%s: %w", p.hosts[v.a.host].ns, v.a.name, p.hosts[v.b.host].ns, v.b.name, err)
		}
	}

	// Set up each end in its namespace.
	for i, ph := range p.hosts {
		h := hosts[i]
		err := h.Do(func() error {
			for _, e := range ph.links {
				link, err := setupEnd(e, bridges)
				if err != nil {
					return fmt.Errorf("%s: %w", e.name, err)
				}
				h.Links = append(h.Links, &Link{
					Name: e.name, Index: link.Attrs().Index, Segment: e.segment, Addr: e.addr,
					MAC: link.Attrs().HardwareAddr, MTU: link.Attrs().MTU, Queues: e.queues,
					Peer: e.peer.name, PeerHost: p.hosts[e.peer.host].ns,
				})
			}
			if i != hSwitch {
				return nil
			}
			for _, b := range p.bridges {
				if err := netlink.LinkSetUp(&netlink.Bridge{LinkAttrs: netlink.LinkAttrs{Index: bridges[b.name]}}); err != nil {
					return fmt.Errorf("bridge %s up: %w", b.name, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
		if len(h.Links) > 0 {
			h.Addr, h.MAC = h.Links[0].Addr.Addr(), h.Links[0].MAC
		}
	}
	l.ServerSide = l.Appliance.LinkOn(SegmentServer)
	l.ClientSide = l.ServerSide
	if up := l.Appliance.LinkOn(SegmentUplink); up != nil {
		l.ClientSide = up
	}

	// Routes, once every link is up.
	for i, ph := range p.hosts {
		err := hosts[i].Do(func() error {
			for _, r := range ph.routes {
				route := &netlink.Route{}
				if r.gw.IsValid() {
					route.Gw = net.IP(r.gw.AsSlice())
				} else {
					link, err := netlink.LinkByName(r.dev)
					if err != nil {
						return fmt.Errorf("route %v dev %s: %w", r.dst, r.dev, err)
					}
					route.LinkIndex, route.Scope = link.Attrs().Index, netlink.SCOPE_LINK
				}
				if r.dst.IsValid() {
					route.Dst = ipNet(r.dst)
				}
				if err := netlink.RouteAdd(route); err != nil {
					return fmt.Errorf("route %v via %v: %w", r.dst, r.gw, err)
				}
			}
			return nil
		})
		if err != nil {
			return err
		}
	}

	if err := l.waitUp(ctx); err != nil {
		return err
	}

	for i, ph := range p.hosts {
		if !ph.servers {
			continue
		}
		h := hosts[i]
		o := l.opt
		if _, err := h.ServeHTTP(":"+strconv.Itoa(int(o.HTTPPort)), h.Role); err != nil {
			return err
		}
		_, cert, err := h.ServeTLS(":"+strconv.Itoa(int(o.HTTPSPort)), h.Role)
		if err != nil {
			return err
		}
		h.CertPEM = cert
		if _, err := h.ServeUDPEcho(":"+strconv.Itoa(int(o.UDPPort)), h.Role); err != nil {
			return err
		}
	}
	return nil
}

// addVeth creates the pair a-b in the calling thread's namespace with b
// made directly in bNS, each end with a.queues rx and tx queues. netlink
// v1.1.0's Veth cannot give the peer a namespace or queue counts, so the
// request is built here; it is what `ip link add a numtxqueues q
// numrxqueues q type veth peer name b numtxqueues q numrxqueues q netns B`
// sends.
func addVeth(a, b *planEnd, bNS netns.NsHandle) error {
	q := nl.Uint32Attr(uint32(a.queues))
	req := nl.NewNetlinkRequest(unix.RTM_NEWLINK, unix.NLM_F_CREATE|unix.NLM_F_EXCL|unix.NLM_F_ACK)
	req.AddData(nl.NewIfInfomsg(unix.AF_UNSPEC))
	req.AddData(nl.NewRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(a.name)))
	req.AddData(nl.NewRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(a.mtu))))
	req.AddData(nl.NewRtAttr(unix.IFLA_NUM_TX_QUEUES, q))
	req.AddData(nl.NewRtAttr(unix.IFLA_NUM_RX_QUEUES, q))
	info := nl.NewRtAttr(unix.IFLA_LINKINFO, nil)
	info.AddRtAttr(nl.IFLA_INFO_KIND, nl.NonZeroTerminated("veth"))
	data := info.AddRtAttr(nl.IFLA_INFO_DATA, nil)
	peer := data.AddRtAttr(nl.VETH_INFO_PEER, nil)
	nl.NewIfInfomsgChild(peer, unix.AF_UNSPEC)
	peer.AddRtAttr(unix.IFLA_IFNAME, nl.ZeroTerminated(b.name))
	peer.AddRtAttr(unix.IFLA_MTU, nl.Uint32Attr(uint32(b.mtu)))
	peer.AddRtAttr(unix.IFLA_NUM_TX_QUEUES, q)
	peer.AddRtAttr(unix.IFLA_NUM_RX_QUEUES, q)
	peer.AddRtAttr(unix.IFLA_NET_NS_FD, nl.Uint32Attr(uint32(bNS)))
	req.AddData(info)
	_, err := req.Execute(unix.NETLINK_ROUTE, 0)
	return err
}

// setupEnd configures one veth end in the calling thread's namespace:
// offloads, bridge, address, up.
func setupEnd(e *planEnd, bridges map[string]int) (netlink.Link, error) {
	link, err := netlink.LinkByName(e.name)
	if err != nil {
		return nil, err
	}
	if e.txOff {
		if err := SetTxChecksumOffload(e.name, false); err != nil {
			return nil, err
		}
	}
	if e.gro {
		if err := SetGRO(e.name, true); err != nil {
			return nil, err
		}
	}
	if e.master != "" {
		if err := netlink.LinkSetMasterByIndex(link, bridges[e.master]); err != nil {
			return nil, fmt.Errorf("enslave to %s: %w", e.master, err)
		}
	}
	if e.addr.IsValid() {
		if err := netlink.AddrAdd(link, nlAddr(e.addr)); err != nil {
			return nil, fmt.Errorf("add %v: %w", e.addr, err)
		}
	}
	if err := netlink.LinkSetUp(link); err != nil {
		return nil, fmt.Errorf("up: %w", err)
	}
	return link, nil
}

// waitUp waits, bounded by upTimeout and ctx, until every host interface
// reports operational state up (both ends of each pair are up).
func (l *Lab) waitUp(ctx context.Context) error {
	deadline := time.Now().Add(upTimeout)
	for _, h := range l.Hosts() {
		for _, ln := range h.Links {
			for {
				var state netlink.LinkOperState
				err := h.Do(func() error {
					link, err := netlink.LinkByIndex(ln.Index)
					if err == nil {
						state = link.Attrs().OperState
					}
					return err
				})
				if err != nil {
					return fmt.Errorf("%s %s: %w", h.Name, ln.Name, err)
				}
				if state == netlink.OperUp {
					break
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("%s %s: still %v after %v", h.Name, ln.Name, state, upTimeout)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(10 * time.Millisecond):
				}
			}
		}
	}
	return nil
}

// Down stops the servers started on the lab's hosts, deletes every
// interface the lab made and removes its namespaces. It may be called any
// number of times, from any goroutine; after the first successful call the
// rest do nothing and return nil. If something could not be removed, Down
// reports it and a later call retries.
func (l *Lab) Down() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, h := range l.created {
		h.stopServers()
	}
	var errs []error
	// Deleting one end of a pair deletes the other, so some of the links
	// listed in later namespaces are gone by the time they come up.
	for _, h := range l.created {
		if h.NS.IsOpen() {
			if err := deleteLinks(h.NS); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", h.Name, err))
			}
		}
	}
	var left []*Host
	for _, h := range l.created {
		h.NS.Close()
		if err := removeNamedNS(h.Name); err != nil {
			errs = append(errs, err)
			left = append(left, h)
		}
	}
	l.created = left
	if len(errs) > 0 {
		return fmt.Errorf("lab %s: down: %w", l.Name, errors.Join(errs...))
	}
	return nil
}

// deleteLinks deletes every interface but loopback in ns.
func deleteLinks(ns netns.NsHandle) error {
	nh, err := netlink.NewHandleAt(ns, unix.NETLINK_ROUTE)
	if err != nil {
		return err
	}
	defer nh.Delete()
	links, err := nh.LinkList()
	if err != nil {
		return err
	}
	var errs []error
	for _, link := range links {
		if link.Attrs().Flags&net.FlagLoopback != 0 {
			continue
		}
		if err := nh.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
			errs = append(errs, fmt.Errorf("delete %s: %w", link.Attrs().Name, err))
		}
	}
	return errors.Join(errs...)
}

// Cleanup removes what labs named prefix left behind, for instance after a
// crash: every namespace /run/netns/<prefix>-*, with every interface in it,
// and any veth or bridge <prefix>-* in the calling thread's namespace (Up
// makes none there; this covers tools that do). Servers of a lab still
// running in another process lose their interfaces but keep their
// sockets until that process exits. prefix must be a valid Options.Name.
func Cleanup(prefix string) error {
	if !validName(prefix) {
		return fmt.Errorf("lab: cleanup %q: not a lab name", prefix)
	}
	names, err := listNamedNS(prefix)
	if err != nil {
		return fmt.Errorf("lab: cleanup %s: %w", prefix, err)
	}
	var errs []error
	for _, name := range names {
		if ns, err := netns.GetFromPath(netnsDir + "/" + name); err == nil {
			if err := deleteLinks(ns); err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", name, err))
			}
			ns.Close()
		}
		if err := removeNamedNS(name); err != nil {
			errs = append(errs, err)
		}
	}
	links, err := netlink.LinkList()
	if err != nil {
		errs = append(errs, err)
	}
	for _, link := range links {
		t := link.Type()
		if strings.HasPrefix(link.Attrs().Name, prefix+"-") && (t == "veth" || t == "bridge") {
			if err := netlink.LinkDel(link); err != nil && !errors.Is(err, unix.ENODEV) {
				errs = append(errs, fmt.Errorf("delete %s: %w", link.Attrs().Name, err))
			}
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("lab: cleanup %s: %w", prefix, errors.Join(errs...))
	}
	return nil
}

func nlAddr(p netip.Prefix) *netlink.Addr { return &netlink.Addr{IPNet: ipNet(p)} }

func ipNet(p netip.Prefix) *net.IPNet {
	return &net.IPNet{IP: net.IP(p.Addr().AsSlice()), Mask: net.CIDRMask(p.Bits(), p.Addr().BitLen())}
}
