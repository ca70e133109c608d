package packettest

import (
	"encoding/binary"
	"net/netip"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Classifications a parser should give the fixtures; the dataplane's table
// tests map them to its own verdicts and drop reasons.
const (
	WantTCP            = "tcp"              // well-formed IPv4 TCP
	WantUDP            = "udp"              // well-formed IPv4 UDP
	WantICMP           = "icmp"             // well-formed ICMPv4
	WantARP            = "arp"              // ARP
	WantIPv6           = "ipv6"             // IPv6, for the kernel
	WantFragment       = "fragment"         // IPv4 fragment: MF set or offset != 0
	WantIPv4Options    = "ipv4-options"     // IPv4 header longer than 20 bytes
	WantTruncated      = "truncated"        // ends before a header it announces
	WantBadVersion     = "bad-version"      // EtherType IPv4, version field not 4
	WantBadIHL         = "bad-ihl"          // IPv4 header length below 20 bytes
	WantBadTotalLength = "bad-total-length" // total length beyond the frame or below the header
	WantBadIPChecksum  = "bad-ip-checksum"  // IPv4 header checksum wrong
	WantUnknownProto   = "unknown-proto"    // IPv4 protocol other than TCP, UDP, ICMP
	WantBadTCPOffset   = "bad-tcp-offset"   // TCP data offset below 5 or beyond the segment
)

// Fixture is a named frame and the classification a parser should give it.
type Fixture struct {
	Name  string
	Want  string // one of the Want constants
	Frame []byte
}

// Addresses of the fixtures: a client reaching a virtual IP through the
// load balancer, a backend behind it and a router on the path. All lie in
// 198.18.0.0/15 (RFC 2544) or 2001:2::/48 (RFC 5180).
var (
	fixClient  = Endpoint{MAC: [6]byte{0x02, 0, 0, 0, 0, 0x0a}, Addr: netip.MustParseAddrPort("198.18.0.10:40000")}
	fixVIP     = Endpoint{MAC: [6]byte{0x02, 0, 0, 0, 0, 0x01}, Addr: netip.MustParseAddrPort("198.18.1.1:80")}
	fixBackend = Endpoint{MAC: [6]byte{0x02, 0, 0, 0, 0, 0x14}, Addr: netip.MustParseAddrPort("198.19.0.20:8080")}
	fixRouter  = Endpoint{MAC: [6]byte{0x02, 0, 0, 0, 0, 0xfe}, Addr: netip.MustParseAddrPort("198.18.0.1:0")}
	fixClient6 = Endpoint{MAC: fixClient.MAC, Addr: netip.MustParseAddrPort("[2001:2::c612:a]:40000")}
	fixVIP6    = Endpoint{MAC: fixVIP.MAC, Addr: netip.MustParseAddrPort("[2001:2::c612:101]:80")}
)

// Fixtures returns realistic frames and frames broken in exactly one way,
// each with its classification, in a fixed order with unique names. Every
// call builds fresh frames, so callers may modify them.
//
// A parser meeting several defects would report the first of: truncated,
// bad-version, bad-ihl, bad-total-length, bad-ip-checksum, fragment,
// ipv4-options, the protocol (tcp, udp, icmp, unknown-proto), bad-tcp-offset;
// each broken fixture has exactly one defect, so the order matters only to
// frames the fuzzers derive from them.
func Fixtures() []Fixture {
	c, v, b, r := fixClient, fixVIP, fixBackend, fixRouter
	const iss, irs = 1_000_000, 2_000_000
	synOpts := []byte{
		2, 4, 0x05, 0xb4, // MSS 1460
		1, 3, 3, 7, // NOP, window scale 7
		1, 1, 4, 2, // NOP, NOP, SACK permitted
	}
	request := []byte("GET / HTTP/1.1\r\nHost: 198.18.1.1\r\n\r\n")

	syn := TCP4(c, v, FlagSYN, nil, WithSeq(iss), WithTCPOptions(synOpts), WithDF(), WithWindow(64240))
	ack := TCP4(c, v, FlagACK, nil, WithSeq(iss+1), WithAck(irs+1), WithDF())
	data := TCP4(c, v, FlagPSH|FlagACK, request, WithSeq(iss+1), WithAck(irs+1), WithDF(), WithID(1))
	udp := UDP4(c, b, []byte("culvert fixture datagram 0123456789"), WithID(7))
	big := UDP4(c, v, nil, WithPayloadLen(1200), WithID(0x1234))
	frags := Fragment4(big, 1024)
	// A full-sized reply from the virtual IP that a router could not
	// forward without fragmenting.
	reply := TCP4(v, c, FlagPSH|FlagACK, nil, WithPayloadLen(1460), WithSeq(irs+1), WithAck(iss+1+uint32(len(request))), WithDF())
	gre := append([]byte{0, 0, 0x08, 0x00}, IPPacket(udp)...) // GRE (RFC 2784) carrying IPv4

	fx := []Fixture{
		{"tcp-syn", WantTCP, syn},
		{"tcp-syn-ack", WantTCP, TCP4(v, c, FlagSYN|FlagACK, nil, WithSeq(irs), WithAck(iss+1), WithTCPOptions(synOpts), WithDF())},
		{"tcp-ack-payload", WantTCP, data},
		{"tcp-fin", WantTCP, TCP4(c, v, FlagFIN|FlagACK, nil, WithSeq(iss+1+uint32(len(request))), WithAck(irs+1), WithDF())},
		{"tcp-rst", WantTCP, TCP4(v, c, FlagRST, nil, WithSeq(irs+1), WithDF())},
		{"udp", WantUDP, udp},
		{"udp-zero-checksum", WantUDP, UDP4(c, b, []byte("no checksum"), WithZeroUDPChecksum())},
		{"icmp-echo-request", WantICMP, ICMP4Echo(c, v, 0x4242, 1, []byte("abcdefghijklmnopqrstuvwabcdefghi"))},
		{"icmp-frag-needed", WantICMP, ICMP4Error(r, v, 3, 4, 1400, Quote(reply, 8), WithTTL(255))},
		{"arp-request", WantARP, ARPRequest(r.MAC, r.Addr.Addr(), v.Addr.Addr())},
		{"ipv6-tcp", WantIPv6, TCP6(fixClient6, fixVIP6, FlagSYN, nil, WithSeq(iss), WithTCPOptions(synOpts))},
		{"ipv4-fragment-first", WantFragment, frags[0]},
		{"ipv4-fragment-last", WantFragment, frags[1]},
		{"ipv4-options", WantIPv4Options, TCP4(c, v, FlagSYN, nil, WithSeq(iss), WithIPOptions([]byte{0x94, 4, 0, 0}))}, // router alert, RFC 2113
		{"truncated-14", WantTruncated, clone(syn[:14])},
		{"truncated-20", WantTruncated, clone(syn[:20])},
		{"truncated-33", WantTruncated, clone(syn[:33])},
		{"truncated-tcp-header", WantTruncated, truncatedTCP(ack)},
		{"bad-version", WantBadVersion, mutateIPv4(ack, func(ip []byte) { ip[0] = 6<<4 | 5 })},
		{"bad-ihl", WantBadIHL, mutateIPv4(ack, func(ip []byte) { ip[0] = 4<<4 | 4 })},
		{"bad-total-length-beyond-frame", WantBadTotalLength, mutateIPv4(udp, func(ip []byte) { binary.BigEndian.PutUint16(ip[2:], 200) })},
		{"bad-total-length-below-header", WantBadTotalLength, mutateIPv4(udp, func(ip []byte) { binary.BigEndian.PutUint16(ip[2:], 16) })},
		{"bad-ip-checksum", WantBadIPChecksum, badIPChecksum(udp)},
		{"unknown-proto-gre", WantUnknownProto, serializeIPv4(c, v, 47, gre)},
		{"tcp-offset-below-5", WantBadTCPOffset, mutateTCP(ack, func(tcp []byte) { tcp[12] = 4 << 4 })},
		{"tcp-offset-beyond-packet", WantBadTCPOffset, mutateTCP(ack, func(tcp []byte) { tcp[12] = 15 << 4 })},
	}
	return fx
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

// mutateIPv4 returns a copy of frame with fn applied to its IPv4 header and
// the header checksum recomputed over the first 20 bytes, so that the
// mutation is the only defect.
func mutateIPv4(frame []byte, fn func(ip []byte)) []byte {
	f := clone(frame)
	ip := f[ethHeaderLen:]
	fn(ip)
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], Checksum(ip[:ipv4HeaderLen], 0))
	return f
}

// mutateTCP returns a copy of frame, an IPv4 TCP frame without IP options,
// with fn applied to its TCP header and the TCP checksum recomputed.
func mutateTCP(frame []byte, fn func(tcp []byte)) []byte {
	f := clone(frame)
	ip := f[ethHeaderLen:]
	seg := ip[ipv4HeaderLen:binary.BigEndian.Uint16(ip[2:])]
	fn(seg)
	seg[16], seg[17] = 0, 0
	binary.BigEndian.PutUint16(seg[16:], Checksum(seg, pseudoHeaderSum(ip[12:16], ip[16:20], 6, len(seg))))
	return f
}

// badIPChecksum returns a copy of frame with a wrong IPv4 header checksum.
// Flipping bits in both bytes cannot turn 0x0000 into 0xffff, the one other
// value that would still verify.
func badIPChecksum(frame []byte) []byte {
	f := clone(frame)
	f[ethHeaderLen+10] ^= 0x01
	f[ethHeaderLen+11] ^= 0x01
	return f
}

// truncatedTCP returns frame, an IPv4 TCP frame, with the IP packet cut to
// its header and 10 bytes of TCP header, total length and checksum
// consistent, padded to 60 bytes as Ethernet would.
func truncatedTCP(frame []byte) []byte {
	const ipLen = ipv4HeaderLen + 10
	f := make([]byte, 60)
	copy(f, frame[:ethHeaderLen+ipLen])
	ip := f[ethHeaderLen:]
	binary.BigEndian.PutUint16(ip[2:], ipLen)
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], Checksum(ip[:ipv4HeaderLen], 0))
	return f
}

// serializeIPv4 returns a frame carrying an IPv4 packet of the given
// protocol with payload as is.
func serializeIPv4(src, dst Endpoint, proto uint8, payload []byte) []byte {
	o := collect("fixture", 0, nil)
	ip := o.ipv4("fixture", src.Addr.Addr(), dst.Addr.Addr(), layers.IPProtocol(proto))
	return serialize(ethernet(src.MAC, dst.MAC, layers.EthernetTypeIPv4), ip, gopacket.Payload(payload))
}
