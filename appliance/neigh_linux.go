package appliance

import (
	"fmt"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"

	"github.com/culvert-lb/culvert/internal/header"
)

// neighbors finds link-layer next hops in the kernel's routing and
// neighbour tables (netlink), and asks the kernel to resolve the ones it
// does not know yet.
type neighbors struct{}

// nextHop returns the address whose MAC frames for dst must carry: dst
// itself when on-link, else the route's gateway.
func (neighbors) nextHop(dst netip.Addr) (netip.Addr, int, error) {
	routes, err := netlink.RouteGet(net.IP(dst.AsSlice()))
	if err != nil || len(routes) == 0 {
		return netip.Addr{}, 0, fmt.Errorf("no route to %v: %v", dst, err)
	}
	r := routes[0]
	if gw, ok := netip.AddrFromSlice(r.Gw); ok && gw.Unmap().IsValid() && !gw.Unmap().IsUnspecified() {
		return gw.Unmap(), r.LinkIndex, nil
	}
	return dst, r.LinkIndex, nil
}

const usableNUD = netlink.NUD_REACHABLE | netlink.NUD_STALE | netlink.NUD_DELAY | netlink.NUD_PROBE | netlink.NUD_PERMANENT | netlink.NUD_NOARP

// lookup returns the MAC to send frames for dst to, and whether the kernel
// knows it. When it does not, it sends an empty UDP datagram to the next
// hop's discard port so that the kernel resolves it.
func (n neighbors) lookup(dst netip.Addr) (header.MAC, bool) {
	hop, link, err := n.nextHop(dst)
	if err != nil {
		return header.MAC{}, false
	}
	list, err := netlink.NeighList(link, netlink.FAMILY_V4)
	if err == nil {
		for _, e := range list {
			if a, ok := netip.AddrFromSlice(e.IP); ok && a.Unmap() == hop && e.State&usableNUD != 0 && len(e.HardwareAddr) == 6 {
				return header.MAC(e.HardwareAddr), true
			}
		}
	}
	if c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IP(hop.AsSlice()), Port: 9}); err == nil {
		c.Write(nil)
		c.Close()
	}
	return header.MAC{}, false
}

// linkMAC returns an interface's MAC.
func linkMAC(name string) (header.MAC, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return header.MAC{}, fmt.Errorf("interface %s: %w", name, err)
	}
	hw := l.Attrs().HardwareAddr
	if len(hw) != 6 {
		return header.MAC{}, fmt.Errorf("interface %s: no Ethernet address", name)
	}
	return header.MAC(hw), nil
}

// linkMTU returns an interface's MTU.
func linkMTU(name string) (int, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return 0, fmt.Errorf("interface %s: %w", name, err)
	}
	return l.Attrs().MTU, nil
}
