package packettest

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"testing"

	"github.com/google/gopacket/layers"
)

// Ethernet (IEEE 802.3) checkers. They need the frame scope.

// EthSrc checks the Ethernet source address.
func EthSrc(mac [6]byte) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.eth == nil {
			p.missing(t, "Ethernet", "eth src")
			return
		}
		if !bytes.Equal(p.eth.SrcMAC, mac[:]) {
			p.errorf(t, "eth src = %v, want %v", p.eth.SrcMAC, net.HardwareAddr(mac[:]))
		}
	}
}

// EthDst checks the Ethernet destination address.
func EthDst(mac [6]byte) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.eth == nil {
			p.missing(t, "Ethernet", "eth dst")
			return
		}
		if !bytes.Equal(p.eth.DstMAC, mac[:]) {
			p.errorf(t, "eth dst = %v, want %v", p.eth.DstMAC, net.HardwareAddr(mac[:]))
		}
	}
}

// EtherType checks the Ethernet type field, as 0x0800 for IPv4.
func EtherType(typ uint16) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.eth == nil {
			p.missing(t, "Ethernet", "ethertype")
			return
		}
		if got := uint16(p.eth.EthernetType); got != typ {
			p.errorf(t, "ethertype = %#04x, want %#04x", got, typ)
		}
	}
}

// IP checkers. Unless noted they work on IPv4 (RFC 791) and IPv6 (RFC 8200)
// and read the header of the scope.

// ipName names the IP version of the scope for messages.
func (p *Packet) ipName() string {
	if p.ip6 != nil {
		return "ipv6"
	}
	return "ipv4"
}

// Src checks the IP source address.
func Src(a netip.Addr) Checker { return addrChecker("src", a) }

// Dst checks the IP destination address.
func Dst(a netip.Addr) Checker { return addrChecker("dst", a) }

func addrChecker(field string, want netip.Addr) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		var raw []byte
		switch {
		case p.ip4 != nil && field == "src":
			raw = p.ip4.SrcIP
		case p.ip4 != nil:
			raw = p.ip4.DstIP
		case p.ip6 != nil && field == "src":
			raw = p.ip6.SrcIP
		case p.ip6 != nil:
			raw = p.ip6.DstIP
		default:
			p.missing(t, "IP", field)
			return
		}
		got, _ := netip.AddrFromSlice(raw)
		if p.ip4 != nil {
			want = want.Unmap()
		}
		if got != want {
			p.errorf(t, "%s %s = %v, want %v", p.ipName(), field, got, want)
		}
	}
}

// TTL checks the IPv4 time to live or the IPv6 hop limit.
func TTL(n uint8) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		switch {
		case p.ip4 != nil:
			if p.ip4.TTL != n {
				p.errorf(t, "ipv4 ttl = %d, want %d", p.ip4.TTL, n)
			}
		case p.ip6 != nil:
			if p.ip6.HopLimit != n {
				p.errorf(t, "ipv6 hop limit = %d, want %d", p.ip6.HopLimit, n)
			}
		default:
			p.missing(t, "IP", "ttl")
		}
	}
}

// Proto checks the IPv4 protocol or the IPv6 next header, as 6 for TCP.
func Proto(n uint8) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		switch {
		case p.ip4 != nil:
			if uint8(p.ip4.Protocol) != n {
				p.errorf(t, "ipv4 protocol = %d, want %d", p.ip4.Protocol, n)
			}
		case p.ip6 != nil:
			if uint8(p.ip6.NextHeader) != n {
				p.errorf(t, "ipv6 next header = %d, want %d", p.ip6.NextHeader, n)
			}
		default:
			p.missing(t, "IP", "protocol")
		}
	}
}

// DF checks the IPv4 Don't Fragment flag.
func DF(set bool) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.ip4 == nil {
			p.missing(t, "IPv4", "ipv4 df")
			return
		}
		if got := p.ip4.Flags&layers.IPv4DontFragment != 0; got != set {
			p.errorf(t, "ipv4 df = %v, want %v", got, set)
		}
	}
}

// ID checks the IPv4 identification field.
func ID(id uint16) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.ip4 == nil {
			p.missing(t, "IPv4", "ipv4 id")
			return
		}
		if p.ip4.Id != id {
			p.errorf(t, "ipv4 id = %d, want %d", p.ip4.Id, id)
		}
	}
}

// ipLen returns the packet length that the scope's IP header declares,
// header included, and the length of the IP header, read from the raw
// header rather than from gopacket, which rewrites a total length of 0.
func (p *Packet) ipLen() (total, header int) {
	if p.ip4 != nil {
		return int(binary.BigEndian.Uint16(p.ip4.Contents[2:])), len(p.ip4.Contents)
	}
	return ipv6HeaderLen + int(binary.BigEndian.Uint16(p.ip6.Contents[4:])), ipv6HeaderLen
}

// ipComplete reports whether the scope holds all of the IP packet that its
// header declares. Only a quote or a truncated frame does not.
func (p *Packet) ipComplete() bool {
	total, _ := p.ipLen()
	return total <= p.ipAvail
}

// isFragment reports whether the scope's IPv4 packet is a fragment.
func (p *Packet) isFragment() bool {
	return p.ip4 != nil && (p.ip4.Flags&layers.IPv4MoreFragments != 0 || p.ip4.FragOffset != 0)
}

// TotalLenMatches checks the length fields of the scope against the bytes
// present: the IPv4 total length (or IPv6 payload length) must cover exactly
// the bytes after the Ethernet header, except that a 60-byte frame may end
// in Ethernet padding; inside a tunnel it must cover exactly the outer
// payload; in a quote, which may be cut short, it must cover at least the
// bytes quoted. The UDP length, if any, must equal the IP payload length
// the IP header declares.
func TotalLenMatches() Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.ip4 == nil && p.ip6 == nil {
			p.missing(t, "IP", "length")
			return
		}
		total, header := p.ipLen()
		field, value := "ipv4 total length", total
		if p.ip6 != nil {
			field, value = "ipv6 payload length", total-ipv6HeaderLen
		}
		const minFrame = 60 // 64-byte Ethernet minimum without the FCS
		switch {
		case p.quote:
			if total < p.ipAvail {
				p.errorf(t, "%s = %d, but the quote holds %d bytes of the packet", field, value, p.ipAvail)
			}
		case total == p.ipAvail:
		case p.eth != nil && total < p.ipAvail && len(p.data) == minFrame:
			// Ethernet padding.
		case p.eth != nil:
			p.errorf(t, "%s = %d, want %d (the bytes after the Ethernet header)", field, value, value+p.ipAvail-total)
		default:
			p.errorf(t, "%s = %d, want %d (the bytes the outer packet carries)", field, value, value+p.ipAvail-total)
		}
		if p.udp != nil && !p.isFragment() {
			if got := int(p.udp.Length); got != total-header {
				p.errorf(t, "udp length = %d, want %d (the %s payload length)", got, total-header, p.ipName())
			}
		}
	}
}

// ValidIPv4Checksum checks the IPv4 header checksum by summing the header
// with Checksum.
func ValidIPv4Checksum() Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.ip4 == nil {
			p.missing(t, "IPv4", "ipv4 checksum")
			return
		}
		h := p.ip4.Contents
		if Checksum(h, 0) != 0 {
			got := binary.BigEndian.Uint16(h[10:])
			p.errorf(t, "ipv4 checksum = %#04x, want %#04x", got, checksumWithField(h, 10, 0))
		}
	}
}

// checksumWithField returns the checksum b should carry at off: Checksum
// of b with the field zeroed.
func checksumWithField(b []byte, off int, initial uint32) uint16 {
	c := append([]byte(nil), b...)
	c[off], c[off+1] = 0, 0
	return Checksum(c, initial)
}

// Transport checkers. SrcPort and DstPort read TCP or UDP; in a quote they,
// Seq, Ack and TCPFlagsAre need only the bytes of the header that hold the
// field.

// l4Field checks that the scope holds the bytes [0, end) of its transport
// header; only a quote can lack them.
func (p *Packet) l4Field(t testing.TB, field string, end int) bool {
	t.Helper()
	if p.quote && p.l4Have < end {
		p.errorf(t, "%s: the quote holds %d bytes of the transport header, %d needed", field, p.l4Have, end)
		return false
	}
	return true
}

// SrcPort checks the TCP or UDP source port.
func SrcPort(port uint16) Checker { return portChecker("src port", 0, port) }

// DstPort checks the TCP or UDP destination port.
func DstPort(port uint16) Checker { return portChecker("dst port", 2, port) }

func portChecker(field string, off int, want uint16) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		var got uint16
		var name string
		switch {
		case p.tcp != nil && off == 0:
			got, name = uint16(p.tcp.SrcPort), "tcp"
		case p.tcp != nil:
			got, name = uint16(p.tcp.DstPort), "tcp"
		case p.udp != nil && off == 0:
			got, name = uint16(p.udp.SrcPort), "udp"
		case p.udp != nil:
			got, name = uint16(p.udp.DstPort), "udp"
		default:
			p.missing(t, "TCP or UDP", field)
			return
		}
		if !p.l4Field(t, name+" "+field, off+2) {
			return
		}
		if got != want {
			p.errorf(t, "%s %s = %d, want %d", name, field, got, want)
		}
	}
}

// TCPFlagsAre checks that the TCP flags are exactly f.
func TCPFlagsAre(f TCPFlags) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.tcp == nil {
			p.missing(t, "TCP", "tcp flags")
			return
		}
		if !p.l4Field(t, "tcp flags", 14) {
			return
		}
		if got := tcpFlagsOf(p.tcp); got != f {
			p.errorf(t, "tcp flags = %v, want %v", got, f)
		}
	}
}

// Seq checks the TCP sequence number.
func Seq(n uint32) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.tcp == nil {
			p.missing(t, "TCP", "tcp seq")
			return
		}
		if p.l4Field(t, "tcp seq", 8) && p.tcp.Seq != n {
			p.errorf(t, "tcp seq = %d, want %d", p.tcp.Seq, n)
		}
	}
}

// Ack checks the TCP acknowledgment number.
func Ack(n uint32) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.tcp == nil {
			p.missing(t, "TCP", "tcp ack")
			return
		}
		if p.l4Field(t, "tcp ack", 12) && p.tcp.Ack != n {
			p.errorf(t, "tcp ack = %d, want %d", p.tcp.Ack, n)
		}
	}
}

// Payload checks the bytes after the TCP, UDP or ICMPv4 header.
func Payload(want []byte) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		var got []byte
		var name string
		switch {
		case p.tcp != nil:
			got, name = p.tcp.Payload, "tcp"
		case p.udp != nil:
			got, name = p.udp.Payload, "udp"
		case p.icmp != nil:
			got, name = p.icmp.Payload, "icmp"
		default:
			p.missing(t, "TCP, UDP or ICMPv4", "payload")
			return
		}
		if p.quote && !p.ipComplete() {
			p.errorf(t, "%s payload: the quote does not hold the whole packet", name)
			return
		}
		if !bytes.Equal(got, want) {
			p.errorf(t, "%s payload = %s, want %s", name, showBytes(got, want), showBytes(want, got))
		}
	}
}

// showBytes renders b for a mismatch message against other: its length,
// the first offset where they differ, and at most 32 bytes from there.
func showBytes(b, other []byte) string {
	i := 0
	for i < len(b) && i < len(other) && b[i] == other[i] {
		i++
	}
	end := min(i+32, len(b))
	more := ""
	if end < len(b) {
		more = " ..."
	}
	return fmt.Sprintf("%d bytes, from offset %d: [% x%s]", len(b), i, b[i:end], more)
}

// ValidL4Checksum checks the TCP or UDP checksum by summing the segment and
// the pseudo-header with Checksum. A UDP checksum of 0 means "none"
// (RFC 768) and fails here: a dataplane that updates checksums
// incrementally must leave a zero one alone, and ZeroUDPChecksum checks
// that. Over IPv6 a zero UDP checksum is always wrong. Fragments and quotes
// that do not hold the whole segment fail, as the checksum cannot be
// computed from them.
func ValidL4Checksum() Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		p.checkL4Checksum(t)
	}
}

func (p *Packet) checkL4Checksum(t testing.TB) {
	t.Helper()
	var name string
	var proto uint8
	var off, hdr int
	switch {
	case p.tcp != nil:
		name, proto, off, hdr = "tcp", 6, 16, 20
	case p.udp != nil:
		name, proto, off, hdr = "udp", 17, 6, 8
	default:
		p.missing(t, "TCP or UDP", "l4 checksum")
		return
	}
	seg, ok := p.ipPayload(t, name+" checksum")
	if !ok {
		return
	}
	if len(seg) < hdr { // only in a quote, whose header may be padded
		p.errorf(t, "%s checksum: the %s payload is %d bytes, shorter than the header", name, p.ipName(), len(seg))
		return
	}
	if p.udp != nil {
		n := int(p.udp.Length)
		if n < 8 || n > len(seg) {
			p.errorf(t, "udp checksum: udp length %d does not fit the %d-byte %s payload", n, len(seg), p.ipName())
			return
		}
		seg = seg[:n]
	}
	src, dst := p.rawAddrs()
	pseudo := pseudoHeaderSum(src, dst, proto, len(seg))
	got := binary.BigEndian.Uint16(seg[off:])
	want := checksumWithField(seg, off, pseudo)
	if p.udp != nil && want == 0 {
		want = 0xffff
	}
	switch {
	case p.udp != nil && got == 0 && p.ip6 != nil:
		p.errorf(t, "udp checksum = 0, invalid over IPv6, want %#04x", want)
	case p.udp != nil && got == 0:
		p.errorf(t, "udp checksum = 0 (none), want %#04x; check with ZeroUDPChecksum if the input carried none", want)
	case Checksum(seg, pseudo) != 0:
		p.errorf(t, "%s checksum = %#04x, want %#04x", name, got, want)
	}
}

// ipPayload returns the scope's whole IP payload for a checksum, or reports
// why it has none.
func (p *Packet) ipPayload(t testing.TB, field string) ([]byte, bool) {
	t.Helper()
	switch {
	case p.isFragment():
		p.errorf(t, "%s: packet is a fragment; the checksum covers the reassembled datagram", field)
		return nil, false
	case !p.ipComplete():
		total, _ := p.ipLen()
		p.errorf(t, "%s: the %s packet is cut short (%d of %d bytes)", field, p.ipName(), p.ipAvail, total)
		return nil, false
	case p.ip4 != nil:
		return p.ip4.Payload, true
	default:
		return p.ip6.Payload, true
	}
}

// rawAddrs returns the address bytes of the scope's IP header.
func (p *Packet) rawAddrs() (src, dst []byte) {
	if p.ip4 != nil {
		return p.ip4.Contents[12:16], p.ip4.Contents[16:20]
	}
	return p.ip6.Contents[8:24], p.ip6.Contents[24:40]
}

// ZeroUDPChecksum checks that the UDP checksum is 0, "none" (RFC 768).
func ZeroUDPChecksum() Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.udp == nil {
			p.missing(t, "UDP", "udp checksum")
			return
		}
		if p.l4Field(t, "udp checksum", 8) && p.udp.Checksum != 0 {
			p.errorf(t, "udp checksum = %#04x, want 0 (none)", p.udp.Checksum)
		}
	}
}

// ICMPv4 checkers (RFC 792).

// ICMPType checks the ICMP type, as 3 for destination unreachable.
func ICMPType(typ uint8) Checker {
	return icmpChecker("icmp type", 1, func(i *layers.ICMPv4) uint16 { return uint16(i.TypeCode.Type()) }, uint16(typ))
}

// ICMPCode checks the ICMP code, as 4 for fragmentation needed.
func ICMPCode(code uint8) Checker {
	return icmpChecker("icmp code", 2, func(i *layers.ICMPv4) uint16 { return uint16(i.TypeCode.Code()) }, uint16(code))
}

// EchoID checks the identifier of an ICMP echo request or reply.
func EchoID(id uint16) Checker {
	return icmpChecker("icmp echo id", 6, func(i *layers.ICMPv4) uint16 { return i.Id }, id)
}

// EchoSeq checks the sequence number of an ICMP echo request or reply.
func EchoSeq(seq uint16) Checker {
	return icmpChecker("icmp echo seq", 8, func(i *layers.ICMPv4) uint16 { return i.Seq }, seq)
}

// NextHopMTU checks the next-hop MTU of a "fragmentation needed" error
// (RFC 1191), bytes 6-7 of the ICMP header.
func NextHopMTU(mtu uint16) Checker {
	return icmpChecker("icmp next-hop mtu", 8, func(i *layers.ICMPv4) uint16 { return i.Seq }, mtu)
}

func icmpChecker(field string, end int, get func(*layers.ICMPv4) uint16, want uint16) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.icmp == nil {
			p.missing(t, "ICMPv4", field)
			return
		}
		if !p.l4Field(t, field, end) {
			return
		}
		if got := get(p.icmp); got != want {
			p.errorf(t, "%s = %d, want %d", field, got, want)
		}
	}
}

// ValidICMPChecksum checks the ICMPv4 checksum, which covers the whole ICMP
// message, by summing it with Checksum.
func ValidICMPChecksum() Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		p.checkICMPChecksum(t)
	}
}

func (p *Packet) checkICMPChecksum(t testing.TB) {
	t.Helper()
	if p.icmp == nil {
		p.missing(t, "ICMPv4", "icmp checksum")
		return
	}
	msg, ok := p.ipPayload(t, "icmp checksum")
	if !ok {
		return
	}
	if len(msg) < 8 { // only in a quote, whose header may be padded
		p.errorf(t, "icmp checksum: the %s payload is %d bytes, shorter than the header", p.ipName(), len(msg))
		return
	}
	if Checksum(msg, 0) != 0 {
		p.errorf(t, "icmp checksum = %#04x, want %#04x", p.icmp.Checksum, checksumWithField(msg, 2, 0))
	}
}

// ValidChecksums checks every checksum the scope holds: the IPv4 header
// checksum, the TCP, UDP or ICMP checksum, the header checksum of the
// packet quoted by an ICMP error, and all of these in a tunnelled packet.
// It skips the transport checksum of a fragment and of a quote cut short,
// which cannot be computed, and fails on a UDP checksum of 0 as
// ValidL4Checksum does.
func ValidChecksums() Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		switch {
		case p.ip4 != nil:
			ValidIPv4Checksum()(t, p)
		case p.ip6 == nil:
			p.missing(t, "IP", "checksums")
			return
		}
		if p.isFragment() || p.quote && !p.ipComplete() {
			return
		}
		proto := layers.IPProtocol(0)
		if p.ip4 != nil {
			proto = p.ip4.Protocol
		} else {
			proto = p.ip6.NextHeader
		}
		switch {
		case p.tcp != nil, p.udp != nil:
			p.checkL4Checksum(t)
		case p.icmp != nil:
			p.checkICMPChecksum(t)
			if isICMPError(p.icmp.TypeCode.Type()) {
				Quoted(ValidChecksums())(t, p)
			}
		case proto == layers.IPProtocolIPv4 || proto == layers.IPProtocolIPv6:
			Inner(ValidChecksums())(t, p)
		}
	}
}

// ARP checkers (RFC 826). They need the frame scope.

// ARPOp checks the ARP operation: 1 for a request, 2 for a reply.
func ARPOp(op uint16) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.arp == nil {
			p.missing(t, "ARP", "arp operation")
			return
		}
		if p.arp.Operation != op {
			p.errorf(t, "arp operation = %d, want %d", p.arp.Operation, op)
		}
	}
}

// ARPSender checks the ARP sender hardware and protocol addresses.
func ARPSender(mac [6]byte, ip netip.Addr) Checker {
	return arpChecker("sender", mac, ip)
}

// ARPTarget checks the ARP target hardware and protocol addresses.
func ARPTarget(mac [6]byte, ip netip.Addr) Checker {
	return arpChecker("target", mac, ip)
}

func arpChecker(who string, mac [6]byte, ip netip.Addr) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.arp == nil {
			p.missing(t, "ARP", "arp "+who)
			return
		}
		hw, proto := p.arp.SourceHwAddress, p.arp.SourceProtAddress
		if who == "target" {
			hw, proto = p.arp.DstHwAddress, p.arp.DstProtAddress
		}
		if !bytes.Equal(hw, mac[:]) {
			p.errorf(t, "arp %s hardware address = %v, want %v", who, net.HardwareAddr(hw), net.HardwareAddr(mac[:]))
		}
		if got, _ := netip.AddrFromSlice(proto); got != ip.Unmap() {
			p.errorf(t, "arp %s protocol address = %v, want %v", who, got, ip)
		}
	}
}
