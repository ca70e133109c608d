package packettest

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"strings"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Endpoint is one end of a flow as the builders see it: the station's
// Ethernet address and its IP address and port. Builders of ICMP and tunnel
// frames ignore the port. The zero value has no address; builders panic on
// it. Endpoint is a comparable value.
type Endpoint struct {
	MAC  [6]byte
	Addr netip.AddrPort
}

// BroadcastMAC is the Ethernet broadcast address ff:ff:ff:ff:ff:ff.
var BroadcastMAC = [6]byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}

// TCPFlags is the TCP flags byte (RFC 9293 section 3.1, byte 13 of the
// header), one bit per flag. The zero value is no flags.
type TCPFlags uint8

// TCP flag bits, with their wire values.
const (
	FlagFIN TCPFlags = 1 << iota
	FlagSYN
	FlagRST
	FlagPSH
	FlagACK
	FlagURG
	FlagECE
	FlagCWR
)

var tcpFlagNames = [8]string{"FIN", "SYN", "RST", "PSH", "ACK", "URG", "ECE", "CWR"}

// String returns the set flags joined by "|", as "SYN|ACK", or "none".
func (f TCPFlags) String() string {
	if f == 0 {
		return "none"
	}
	var names []string
	for i, n := range tcpFlagNames {
		if f&(1<<i) != 0 {
			names = append(names, n)
		}
	}
	return strings.Join(names, "|")
}

// tcpFlagsOf collects the flags gopacket decoded into a TCPFlags.
func tcpFlagsOf(tcp *layers.TCP) TCPFlags {
	var f TCPFlags
	for i, set := range [8]bool{tcp.FIN, tcp.SYN, tcp.RST, tcp.PSH, tcp.ACK, tcp.URG, tcp.ECE, tcp.CWR} {
		if set {
			f |= 1 << i
		}
	}
	return f
}

// Option changes one field of a frame from its default. Each builder's doc
// lists the options it takes; it panics on any other.
type Option func(*options)

// optionBit names one kind of Option, so that builders can refuse options
// that do not apply to them.
type optionBit uint16

const (
	optTTL optionBit = 1 << iota
	optDF
	optID
	optIPOptions
	optZeroUDPChecksum
	optPayloadLen
	optSeq
	optAck
	optWindow
	optTCPOptions
	optCount = iota
)

var optionNames = [optCount]string{
	"WithTTL", "WithDF", "WithID", "WithIPOptions", "WithZeroUDPChecksum",
	"WithPayloadLen", "WithSeq", "WithAck", "WithWindow", "WithTCPOptions",
}

// Option sets accepted by each family of builders.
const (
	ipv4Opts = optTTL | optDF | optID | optIPOptions
	ipv6Opts = optTTL
	tcpOpts  = optPayloadLen | optSeq | optAck | optWindow | optTCPOptions
	udpOpts  = optPayloadLen
)

type options struct {
	used       optionBit
	ttl        uint8
	df         bool
	id         uint16
	ipOptions  []byte
	zeroUDP    bool
	payloadLen int
	seq, ack   uint32
	window     uint16
	tcpOptions []byte
}

// WithTTL sets the IPv4 time to live or the IPv6 hop limit (default 64).
func WithTTL(n uint8) Option {
	return func(o *options) { o.used |= optTTL; o.ttl = n }
}

// WithDF sets the IPv4 Don't Fragment flag (default clear).
func WithDF() Option {
	return func(o *options) { o.used |= optDF; o.df = true }
}

// WithID sets the IPv4 identification field (default 0).
func WithID(id uint16) Option {
	return func(o *options) { o.used |= optID; o.id = id }
}

// WithIPOptions appends b to the IPv4 header as its options, byte for byte.
// b must be whole options (type 0 and 1 are one byte; others are type,
// length, data), a multiple of 4 bytes long and at most 40; pad with 0
// (end of list) or 1 (no-op).
func WithIPOptions(b []byte) Option {
	b = append([]byte(nil), b...)
	return func(o *options) { o.used |= optIPOptions; o.ipOptions = b }
}

// WithZeroUDPChecksum sends an IPv4 UDP datagram with checksum 0, meaning
// "no checksum" (RFC 768).
func WithZeroUDPChecksum() Option {
	return func(o *options) { o.used |= optZeroUDPChecksum; o.zeroUDP = true }
}

// WithPayloadLen replaces the payload with n bytes counting up from 0
// (byte i is i%256). The builder's payload argument must then be nil.
func WithPayloadLen(n int) Option {
	if n < 0 {
		panic(fmt.Sprintf("packettest: WithPayloadLen(%d)", n))
	}
	return func(o *options) { o.used |= optPayloadLen; o.payloadLen = n }
}

// WithSeq sets the TCP sequence number (default 0).
func WithSeq(n uint32) Option {
	return func(o *options) { o.used |= optSeq; o.seq = n }
}

// WithAck sets the TCP acknowledgment number (default 0). It does not set
// the ACK flag.
func WithAck(n uint32) Option {
	return func(o *options) { o.used |= optAck; o.ack = n }
}

// WithWindow sets the TCP window (default 65535).
func WithWindow(n uint16) Option {
	return func(o *options) { o.used |= optWindow; o.window = n }
}

// WithTCPOptions appends b to the TCP header as its options, byte for byte,
// under the same rules as WithIPOptions: whole options (kind 0 and 1 are one
// byte; others are kind, length, data), a multiple of 4 bytes, at most 40.
func WithTCPOptions(b []byte) Option {
	b = append([]byte(nil), b...)
	return func(o *options) { o.used |= optTCPOptions; o.tcpOptions = b }
}

// collect applies opts over the defaults and panics, naming the builder, if
// any of them is not in allowed.
func collect(builder string, allowed optionBit, opts []Option) *options {
	o := &options{ttl: 64, window: 65535}
	for _, opt := range opts {
		opt(o)
	}
	if bad := o.used &^ allowed; bad != 0 {
		var names []string
		for i, n := range optionNames {
			if bad&(1<<i) != 0 {
				names = append(names, n)
			}
		}
		panic(fmt.Sprintf("packettest: %s does not take %s", builder, strings.Join(names, ", ")))
	}
	return o
}

// payload returns the payload the caller asked for, by argument or by
// WithPayloadLen.
func (o *options) payload(builder string, p []byte) []byte {
	if o.used&optPayloadLen == 0 {
		return p
	}
	if p != nil {
		panic(fmt.Sprintf("packettest: %s given both a payload and WithPayloadLen", builder))
	}
	p = make([]byte, o.payloadLen)
	for i := range p {
		p[i] = byte(i)
	}
	return p
}

// mustAddr4 returns a as a 4-byte slice, or panics naming the builder.
func mustAddr4(builder string, a netip.Addr) net.IP {
	if !a.Is4() {
		panic(fmt.Sprintf("packettest: %s needs an IPv4 address, got %v", builder, a))
	}
	return a.AsSlice()
}

// mustAddr6 returns a as a 16-byte slice, or panics naming the builder.
func mustAddr6(builder string, a netip.Addr) net.IP {
	if !a.Is6() || a.Is4In6() {
		panic(fmt.Sprintf("packettest: %s needs an IPv6 address, got %v", builder, a))
	}
	return a.AsSlice()
}

func (o *options) ipv4(builder string, src, dst netip.Addr, proto layers.IPProtocol) *layers.IPv4 {
	ip := &layers.IPv4{
		Version:  4,
		TTL:      o.ttl,
		Id:       o.id,
		Protocol: proto,
		SrcIP:    mustAddr4(builder, src),
		DstIP:    mustAddr4(builder, dst),
	}
	if o.df {
		ip.Flags |= layers.IPv4DontFragment
	}
	if o.ipOptions != nil {
		ip.Options = ipOptionList(o.ipOptions)
	}
	return ip
}

func (o *options) ipv6(builder string, src, dst netip.Addr, proto layers.IPProtocol) *layers.IPv6 {
	return &layers.IPv6{
		Version:    6,
		HopLimit:   o.ttl,
		NextHeader: proto,
		SrcIP:      mustAddr6(builder, src),
		DstIP:      mustAddr6(builder, dst),
	}
}

// ipOptionList splits raw IPv4 options into gopacket's list so that
// gopacket serializes exactly the bytes given.
func ipOptionList(b []byte) []layers.IPv4Option {
	var list []layers.IPv4Option
	forEachOption("IP", b, func(kind byte, opt []byte) {
		if len(opt) == 1 {
			list = append(list, layers.IPv4Option{OptionType: kind, OptionLength: 1})
		} else {
			list = append(list, layers.IPv4Option{OptionType: kind, OptionLength: opt[1], OptionData: opt[2:]})
		}
	})
	return list
}

// tcpOptionList is ipOptionList for TCP options.
func tcpOptionList(b []byte) []layers.TCPOption {
	var list []layers.TCPOption
	forEachOption("TCP", b, func(kind byte, opt []byte) {
		if len(opt) == 1 {
			list = append(list, layers.TCPOption{OptionType: layers.TCPOptionKind(kind), OptionLength: 1})
		} else {
			list = append(list, layers.TCPOption{OptionType: layers.TCPOptionKind(kind), OptionLength: opt[1], OptionData: opt[2:]})
		}
	})
	return list
}

// forEachOption walks options in the common IPv4/TCP layout, panicking on a
// malformed list: kinds 0 and 1 are one byte, the rest carry a length byte
// that counts the kind and length bytes too.
func forEachOption(what string, b []byte, fn func(kind byte, opt []byte)) {
	if len(b)%4 != 0 || len(b) > 40 {
		panic(fmt.Sprintf("packettest: %s options must be a multiple of 4 bytes and at most 40, got %d", what, len(b)))
	}
	for len(b) > 0 {
		kind := b[0]
		if kind == 0 || kind == 1 {
			fn(kind, b[:1])
			b = b[1:]
			continue
		}
		if len(b) < 2 || int(b[1]) < 2 || int(b[1]) > len(b) {
			panic(fmt.Sprintf("packettest: malformed %s option % x", what, b))
		}
		fn(kind, b[:b[1]])
		b = b[b[1]:]
	}
}

func ethernet(src, dst [6]byte, typ layers.EthernetType) *layers.Ethernet {
	return &layers.Ethernet{
		SrcMAC:       append(net.HardwareAddr(nil), src[:]...),
		DstMAC:       append(net.HardwareAddr(nil), dst[:]...),
		EthernetType: typ,
	}
}

// serialize encodes ls with lengths and checksums filled in by gopacket.
func serialize(ls ...gopacket.SerializableLayer) []byte {
	buf := gopacket.NewSerializeBuffer()
	opts := gopacket.SerializeOptions{FixLengths: true, ComputeChecksums: true}
	if err := gopacket.SerializeLayers(buf, opts, ls...); err != nil {
		panic(fmt.Sprintf("packettest: serialize: %v", err))
	}
	return buf.Bytes()
}

// TCP4 returns an Ethernet frame carrying an IPv4 TCP segment from src to
// dst with the given flags and payload. It takes WithTTL, WithDF, WithID,
// WithIPOptions, WithPayloadLen, WithSeq, WithAck, WithWindow and
// WithTCPOptions.
func TCP4(src, dst Endpoint, flags TCPFlags, payload []byte, opts ...Option) []byte {
	const name = "TCP4"
	o := collect(name, ipv4Opts|tcpOpts, opts)
	ip := o.ipv4(name, src.Addr.Addr(), dst.Addr.Addr(), layers.IPProtocolTCP)
	tcp := o.tcp(src, dst, flags)
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		panic(err)
	}
	return serialize(ethernet(src.MAC, dst.MAC, layers.EthernetTypeIPv4), ip, tcp, gopacket.Payload(o.payload(name, payload)))
}

// TCP6 is TCP4 over IPv6. It takes WithTTL (the hop limit), WithPayloadLen,
// WithSeq, WithAck, WithWindow and WithTCPOptions.
func TCP6(src, dst Endpoint, flags TCPFlags, payload []byte, opts ...Option) []byte {
	const name = "TCP6"
	o := collect(name, ipv6Opts|tcpOpts, opts)
	ip := o.ipv6(name, src.Addr.Addr(), dst.Addr.Addr(), layers.IPProtocolTCP)
	tcp := o.tcp(src, dst, flags)
	if err := tcp.SetNetworkLayerForChecksum(ip); err != nil {
		panic(err)
	}
	return serialize(ethernet(src.MAC, dst.MAC, layers.EthernetTypeIPv6), ip, tcp, gopacket.Payload(o.payload(name, payload)))
}

func (o *options) tcp(src, dst Endpoint, flags TCPFlags) *layers.TCP {
	tcp := &layers.TCP{
		SrcPort: layers.TCPPort(src.Addr.Port()),
		DstPort: layers.TCPPort(dst.Addr.Port()),
		Seq:     o.seq,
		Ack:     o.ack,
		Window:  o.window,
		FIN:     flags&FlagFIN != 0,
		SYN:     flags&FlagSYN != 0,
		RST:     flags&FlagRST != 0,
		PSH:     flags&FlagPSH != 0,
		ACK:     flags&FlagACK != 0,
		URG:     flags&FlagURG != 0,
		ECE:     flags&FlagECE != 0,
		CWR:     flags&FlagCWR != 0,
	}
	if o.tcpOptions != nil {
		tcp.Options = tcpOptionList(o.tcpOptions)
	}
	return tcp
}

// UDP4 returns an Ethernet frame carrying an IPv4 UDP datagram from src to
// dst. It takes WithTTL, WithDF, WithID, WithIPOptions, WithPayloadLen and
// WithZeroUDPChecksum. A computed checksum of 0 is sent as 0xffff (RFC 768),
// which gopacket does not do by itself.
func UDP4(src, dst Endpoint, payload []byte, opts ...Option) []byte {
	const name = "UDP4"
	o := collect(name, ipv4Opts|udpOpts|optZeroUDPChecksum, opts)
	ip := o.ipv4(name, src.Addr.Addr(), dst.Addr.Addr(), layers.IPProtocolUDP)
	udp := udpLayer(src, dst)
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		panic(err)
	}
	frame := serialize(ethernet(src.MAC, dst.MAC, layers.EthernetTypeIPv4), ip, udp, gopacket.Payload(o.payload(name, payload)))
	sum := frame[ethHeaderLen+int(frame[ethHeaderLen]&0x0f)*4+6:]
	if o.zeroUDP {
		sum[0], sum[1] = 0, 0
	} else {
		fixZeroUDPChecksum(sum)
	}
	return frame
}

// UDP6 is UDP4 over IPv6, where the checksum is mandatory (RFC 8200
// section 8.1). It takes WithTTL (the hop limit) and WithPayloadLen.
func UDP6(src, dst Endpoint, payload []byte, opts ...Option) []byte {
	const name = "UDP6"
	o := collect(name, ipv6Opts|udpOpts, opts)
	ip := o.ipv6(name, src.Addr.Addr(), dst.Addr.Addr(), layers.IPProtocolUDP)
	udp := udpLayer(src, dst)
	if err := udp.SetNetworkLayerForChecksum(ip); err != nil {
		panic(err)
	}
	frame := serialize(ethernet(src.MAC, dst.MAC, layers.EthernetTypeIPv6), ip, udp, gopacket.Payload(o.payload(name, payload)))
	fixZeroUDPChecksum(frame[ethHeaderLen+ipv6HeaderLen+6:])
	return frame
}

func udpLayer(src, dst Endpoint) *layers.UDP {
	return &layers.UDP{SrcPort: layers.UDPPort(src.Addr.Port()), DstPort: layers.UDPPort(dst.Addr.Port())}
}

// fixZeroUDPChecksum turns a computed UDP checksum of 0 into its other
// one's complement form 0xffff, since 0 on the wire means "none".
func fixZeroUDPChecksum(sum []byte) {
	if sum[0] == 0 && sum[1] == 0 {
		sum[0], sum[1] = 0xff, 0xff
	}
}

// ICMP4Echo returns an Ethernet frame carrying an ICMP echo request (type 8,
// RFC 792) from src to dst; the endpoints' ports are ignored. It takes
// WithTTL, WithDF, WithID, WithIPOptions and WithPayloadLen.
func ICMP4Echo(src, dst Endpoint, id, seq uint16, payload []byte, opts ...Option) []byte {
	return icmp4("ICMP4Echo", src, dst, layers.ICMPv4TypeEchoRequest, 0, id, seq, payload, ipv4Opts|optPayloadLen, opts)
}

// ICMP4EchoReply is ICMP4Echo for an echo reply (type 0).
func ICMP4EchoReply(src, dst Endpoint, id, seq uint16, payload []byte, opts ...Option) []byte {
	return icmp4("ICMP4EchoReply", src, dst, layers.ICMPv4TypeEchoReply, 0, id, seq, payload, ipv4Opts|optPayloadLen, opts)
}

// ICMP4Error returns an Ethernet frame carrying an ICMP error of the given
// type and code from src (typically a router) to dst, quoting quoted: the
// offending IP packet from its IP header on, of which RFC 792 asks for the
// header and at least the first 8 bytes of its payload (see Quote). mtu is
// written to bytes 6-7 of the ICMP header, the next-hop MTU of a
// "fragmentation needed" error (type 3 code 4, RFC 1191); pass 0 for other
// errors. The ports of the endpoints are ignored. It takes WithTTL, WithDF,
// WithID and WithIPOptions.
func ICMP4Error(src, dst Endpoint, typ, code uint8, mtu uint16, quoted []byte, opts ...Option) []byte {
	return icmp4("ICMP4Error", src, dst, typ, code, 0, mtu, quoted, ipv4Opts, opts)
}

func icmp4(name string, src, dst Endpoint, typ, code uint8, id, seq uint16, payload []byte, allowed optionBit, opts []Option) []byte {
	o := collect(name, allowed, opts)
	ip := o.ipv4(name, src.Addr.Addr(), dst.Addr.Addr(), layers.IPProtocolICMPv4)
	icmp := &layers.ICMPv4{TypeCode: layers.CreateICMPv4TypeCode(typ, code), Id: id, Seq: seq}
	return serialize(ethernet(src.MAC, dst.MAC, layers.EthernetTypeIPv4), ip, icmp, gopacket.Payload(o.payload(name, payload)))
}

// ARPRequest returns a broadcast ARP request (RFC 826) from the station at
// srcMAC/srcIP asking for targetIP. Both addresses must be IPv4.
func ARPRequest(srcMAC [6]byte, srcIP, targetIP netip.Addr) []byte {
	return arp("ARPRequest", layers.ARPRequest, srcMAC, srcIP, [6]byte{}, targetIP, BroadcastMAC)
}

// ARPReply returns an ARP reply from senderMAC/senderIP, unicast to
// targetMAC/targetIP.
func ARPReply(senderMAC [6]byte, senderIP netip.Addr, targetMAC [6]byte, targetIP netip.Addr) []byte {
	return arp("ARPReply", layers.ARPReply, senderMAC, senderIP, targetMAC, targetIP, targetMAC)
}

func arp(name string, op uint16, sha [6]byte, spa netip.Addr, tha [6]byte, tpa netip.Addr, ethDst [6]byte) []byte {
	a := &layers.ARP{
		AddrType:          layers.LinkTypeEthernet,
		Protocol:          layers.EthernetTypeIPv4,
		HwAddressSize:     6,
		ProtAddressSize:   4,
		Operation:         op,
		SourceHwAddress:   append([]byte(nil), sha[:]...),
		SourceProtAddress: mustAddr4(name, spa),
		DstHwAddress:      append([]byte(nil), tha[:]...),
		DstProtAddress:    mustAddr4(name, tpa),
	}
	return serialize(ethernet(sha, ethDst, layers.EthernetTypeARP), a)
}

// Encap4 returns an Ethernet frame carrying inner, an IP packet from its
// header on (see IPPacket), inside an outer IPv4 header from src to dst:
// IPIP (protocol 4, RFC 2003) for an IPv4 inner packet, protocol 41
// (RFC 4213) for IPv6. It takes WithTTL, WithDF and WithID.
func Encap4(src, dst Endpoint, inner []byte, opts ...Option) []byte {
	const name = "Encap4"
	o := collect(name, optTTL|optDF|optID, opts)
	proto := layers.IPProtocolIPv4
	switch {
	case len(inner) > 0 && inner[0]>>4 == 4:
	case len(inner) > 0 && inner[0]>>4 == 6:
		proto = layers.IPProtocolIPv6
	default:
		panic("packettest: Encap4: inner is not an IP packet")
	}
	ip := o.ipv4(name, src.Addr.Addr(), dst.Addr.Addr(), proto)
	return serialize(ethernet(src.MAC, dst.MAC, layers.EthernetTypeIPv4), ip, gopacket.Payload(inner))
}

// Header sizes the builders and checkers rely on.
const (
	ethHeaderLen  = 14
	ipv4HeaderLen = 20
	ipv6HeaderLen = 40
)

// IPPacket returns a copy of the IP packet inside an Ethernet frame: from its
// IP header to the end given by the header's length field, so without
// Ethernet padding. It panics if frame does not carry a complete IPv4 or
// IPv6 packet.
func IPPacket(frame []byte) []byte {
	if len(frame) < ethHeaderLen {
		panic("packettest: IPPacket: frame shorter than an Ethernet header")
	}
	ip := frame[ethHeaderLen:]
	var end int
	switch binary.BigEndian.Uint16(frame[12:]) {
	case uint16(layers.EthernetTypeIPv4):
		if len(ip) < ipv4HeaderLen {
			panic("packettest: IPPacket: IPv4 header truncated")
		}
		end = int(binary.BigEndian.Uint16(ip[2:]))
	case uint16(layers.EthernetTypeIPv6):
		if len(ip) < ipv6HeaderLen {
			panic("packettest: IPPacket: IPv6 header truncated")
		}
		end = ipv6HeaderLen + int(binary.BigEndian.Uint16(ip[4:]))
	default:
		panic("packettest: IPPacket: frame does not carry IP")
	}
	if end > len(ip) {
		panic(fmt.Sprintf("packettest: IPPacket: length field says %d bytes, frame holds %d", end, len(ip)))
	}
	return append([]byte(nil), ip[:end]...)
}

// Quote returns what an ICMP error quotes of the IPv4 packet in frame: its
// IP header and the first n bytes after it (fewer if the packet is shorter).
// RFC 792 asks for n >= 8; RFC 1812 routers quote as much as fits in 576
// bytes.
func Quote(frame []byte, n int) []byte {
	ip := IPPacket(frame)
	if ip[0]>>4 != 4 {
		panic("packettest: Quote: not an IPv4 packet")
	}
	end := int(ip[0]&0x0f)*4 + n
	if n < 0 || end > len(ip) {
		end = len(ip)
	}
	return ip[:end]
}

// Fragment4 splits the IPv4 packet in frame into fragments of at most size
// payload bytes each (RFC 791 section 3.2), returning one Ethernet frame per
// fragment, in order. size must be a positive multiple of 8. It panics if
// frame is not an unfragmented IPv4 packet without options and without DF.
func Fragment4(frame []byte, size int) [][]byte {
	if size <= 0 || size%8 != 0 {
		panic(fmt.Sprintf("packettest: Fragment4: size %d is not a positive multiple of 8", size))
	}
	var eth layers.Ethernet
	var ip layers.IPv4
	if err := eth.DecodeFromBytes(frame, gopacket.NilDecodeFeedback); err != nil || eth.EthernetType != layers.EthernetTypeIPv4 {
		panic("packettest: Fragment4: frame does not carry IPv4")
	}
	if err := ip.DecodeFromBytes(eth.Payload, gopacket.NilDecodeFeedback); err != nil {
		panic(fmt.Sprintf("packettest: Fragment4: %v", err))
	}
	switch {
	case len(ip.Options) > 0:
		panic("packettest: Fragment4: packets with IP options are not supported")
	case ip.Flags&layers.IPv4DontFragment != 0:
		panic("packettest: Fragment4: packet has DF set")
	case ip.Flags&layers.IPv4MoreFragments != 0 || ip.FragOffset != 0:
		panic("packettest: Fragment4: packet is already a fragment")
	}
	payload := append([]byte(nil), ip.Payload...)
	var frames [][]byte
	for off := 0; off < len(payload); off += size {
		end := min(off+size, len(payload))
		frag := ip
		frag.Options = nil
		frag.FragOffset = uint16(off / 8)
		if end < len(payload) {
			frag.Flags |= layers.IPv4MoreFragments
		}
		var src, dst [6]byte
		copy(src[:], eth.SrcMAC)
		copy(dst[:], eth.DstMAC)
		frames = append(frames, serialize(ethernet(src, dst, layers.EthernetTypeIPv4), &frag, gopacket.Payload(payload[off:end])))
	}
	return frames
}
