package vrrp

import (
	"errors"
	"fmt"
	"net/netip"

	"github.com/culvert-lb/culvert/internal/header"
)

// ErrNotSupported is returned by Listen and NewRouter on platforms without
// VRRP sockets (all but Linux).
var ErrNotSupported = errors.New("vrrp: sockets not supported on this platform")

// ErrIPHeader is returned by Conn.Receive for a packet whose IPv4 header is
// malformed or that was cut short by the caller's buffer.
var ErrIPHeader = errors.New("vrrp: malformed or truncated ipv4 packet")

// ConnConfig says where a Conn sends and listens.
type ConnConfig struct {
	// Interface is the name of the link VRRP runs on.
	Interface string
	// Addr is this router's primary address on Interface: the source of
	// every advertisement and the tie-breaker between equal priorities. It
	// must be an address of Interface; zero picks the interface's first
	// IPv4 address.
	Addr netip.Addr
	// Peers, when not empty, replace multicast with unicast: every
	// advertisement is sent to each peer in turn and the group 224.0.0.18
	// is not joined (keepalived's unicast_peer, for networks that drop
	// multicast). Peers' adverts arrive addressed to Addr.
	Peers []netip.Addr
}

func (c *ConnConfig) validate() error {
	var errs []error
	if c.Interface == "" {
		errs = append(errs, errors.New("interface: empty"))
	}
	if c.Addr.IsValid() && !c.Addr.Is4() {
		errs = append(errs, fmt.Errorf("addr: %v: not an IPv4 address", c.Addr))
	}
	for i, p := range c.Peers {
		switch {
		case !p.Is4():
			errs = append(errs, fmt.Errorf("peers[%d]: %v: not an IPv4 address", i, p))
		case p.IsMulticast() || p.IsUnspecified() || p == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
			errs = append(errs, fmt.Errorf("peers[%d]: %v: not a unicast address", i, p))
		case p == c.Addr:
			errs = append(errs, fmt.Errorf("peers[%d]: %v: is this router's own address", i, p))
		}
	}
	return errors.Join(errs...)
}

// ReceiveBufferSize is a buffer size for Conn.Read that holds any VRRP
// advertisement with room to spare: a 60-byte IPv4 header, the 8-byte
// fixed part and 255 addresses take 1088 bytes. Larger datagrams are cut
// short and rejected.
const ReceiveBufferSize = 2048

// maxAdvertSize is the largest VRRP message: 255 IPv4 addresses.
const maxAdvertSize = AdvertMinimumSize + 4*255

// datagram is one received IPv4 packet split into what Parse takes: its
// payload (a sub-slice of the read buffer) and the header's source,
// destination and TTL.
type datagram struct {
	Payload  []byte
	Src, Dst netip.Addr
	TTL      uint8
}

// splitIPv4 checks the IPv4 header at the start of pkt (as a raw socket
// delivers it) and splits off the payload. It does not allocate.
func splitIPv4(pkt []byte) (datagram, RejectReason) {
	ip := header.IPv4(pkt)
	if ip.Validate() != header.IPv4OK || ip.Protocol() != IPProtocol || ip.IsFragment() {
		return datagram{}, RejectIPHeader
	}
	return datagram{
		Payload: ip.Payload(),
		Src:     netip.AddrFrom4(ip.Src()),
		Dst:     netip.AddrFrom4(ip.Dst()),
		TTL:     ip.TTL(),
	}, RejectNone
}

// parsePacket is Conn.Receive after the read: split the IPv4 header and
// Parse the payload.
func parsePacket(pkt []byte) (Advert, netip.Addr, error) {
	d, r := splitIPv4(pkt)
	if r != RejectNone {
		return Advert{}, netip.Addr{}, fmt.Errorf("receive %d bytes: %w", len(pkt), ErrIPHeader)
	}
	a, err := Parse(d.Payload, d.Src, d.Dst, d.TTL)
	if err != nil {
		return Advert{}, d.Src, fmt.Errorf("receive from %v: %w", d.Src, err)
	}
	return a, d.Src, nil
}
