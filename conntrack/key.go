package conntrack

import (
	"net/netip"
	"strconv"
)

// Key4 is a packed IPv4 flow key: comparable, pointer-free, 16 bytes.
//
// Addresses are in network byte order (as on the wire); ports are host byte
// order values. The blank padding must stay zero (composite literals and
// the zero value guarantee it); equality and hashing ignore it anyway.
type Key4 struct {
	Src, Dst         [4]byte
	SrcPort, DstPort uint16 // host byte order values
	Proto            uint8
	_                [3]byte
}

// Key6 is the IPv6 equivalent of Key4 (40 bytes).
type Key6 struct {
	Src, Dst         [16]byte
	SrcPort, DstPort uint16 // host byte order values
	Proto            uint8
	_                [3]byte
}

// Key is the constraint satisfied by the flow keys a Table can hold.
//
// Hashing and equality do not go through methods (a method call on a type
// parameter is an indirect call through the generic dictionary): they read
// the key's bytes directly, see key_unsafe.go.
type Key interface {
	Key4 | Key6
}

// ProtoPersist is the pseudo-protocol of source-IP persistence templates
// (IPVS "template" connections): Key{Src: client, Dst: VIP, DstPort: service
// port, Proto: ProtoPersist}. Such flows are inserted in StatePersist and
// expire PersistTimeout seconds after their last use.
const ProtoPersist = 0xff

// Key sizes in bytes.
const (
	Key4Size = 16
	Key6Size = 40
)

// String formats the key as "proto src:port -> dst:port". Not for the hot path.
func (k Key4) String() string {
	return formatKey(netip.AddrFrom4(k.Src), netip.AddrFrom4(k.Dst), k.SrcPort, k.DstPort, k.Proto)
}

// String formats the key as "proto [src]:port -> [dst]:port". Not for the hot path.
func (k Key6) String() string {
	return formatKey(netip.AddrFrom16(k.Src), netip.AddrFrom16(k.Dst), k.SrcPort, k.DstPort, k.Proto)
}

func formatKey(src, dst netip.Addr, sport, dport uint16, proto uint8) string {
	var p string
	switch proto {
	case 6:
		p = "tcp"
	case 17:
		p = "udp"
	case 1:
		p = "icmp"
	case 58:
		p = "icmpv6"
	case ProtoPersist:
		p = "persist"
	default:
		p = "proto-" + strconv.Itoa(int(proto))
	}
	return p + " " + netip.AddrPortFrom(src, sport).String() + " -> " + netip.AddrPortFrom(dst, dport).String()
}
