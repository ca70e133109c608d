package packettest

import (
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Checker checks one property of a Packet and reports every mismatch with
// t.Errorf; it never stops the test, so one run shows all that is wrong.
// Checkers call t.Helper, so failures point at the test's call to Check.
// A Checker must not retain p.
type Checker func(t testing.TB, p *Packet)

// Packet is what a Checker looks at: a frame decoded by gopacket, or one
// scope inside it, the packet carried by a tunnel (Inner) or quoted by an
// ICMP error (Quoted). A scope holds at most one network header and the
// transport header right after it; Ethernet and ARP exist only in the
// frame scope.
//
// The layer accessors return nil for a header the scope does not hold or
// that gopacket could not decode. Packets are built by Check (valid during
// the Checker call) and by Decode; they alias the frame and are not safe for
// concurrent use with writes to it.
type Packet struct {
	scope string // message prefix naming the scope: "", "inner ", "quoted "
	data  []byte // the bytes of the scope: frame, tunnelled packet or quote
	quote bool   // the scope is an ICMP quote and may be cut short

	eth  *layers.Ethernet
	arp  *layers.ARP
	ip4  *layers.IPv4
	ip6  *layers.IPv6
	tcp  *layers.TCP
	udp  *layers.UDP
	icmp *layers.ICMPv4

	ipAvail int // bytes present from the start of the IP header to the end of the scope
	l4Have  int // bytes present from the start of the transport header (only a quote may hold fewer than the header)
	errs    []string
}

// Bytes returns the bytes of the scope: the whole frame, the tunnelled IP
// packet, or the quote.
func (p *Packet) Bytes() []byte { return p.data }

// IsQuote reports whether the scope is the quote of an ICMP error.
func (p *Packet) IsQuote() bool { return p.quote }

// Ethernet returns the Ethernet header of the frame scope.
func (p *Packet) Ethernet() *layers.Ethernet { return p.eth }

// ARP returns the ARP message of the frame scope.
func (p *Packet) ARP() *layers.ARP { return p.arp }

// IPv4 returns the IPv4 header of the scope.
func (p *Packet) IPv4() *layers.IPv4 { return p.ip4 }

// IPv6 returns the IPv6 header of the scope.
func (p *Packet) IPv6() *layers.IPv6 { return p.ip6 }

// TCP returns the TCP header of the scope. In a quote that holds fewer than
// 20 bytes of it, the fields beyond the quote read as zero.
func (p *Packet) TCP() *layers.TCP { return p.tcp }

// UDP returns the UDP header of the scope.
func (p *Packet) UDP() *layers.UDP { return p.udp }

// ICMPv4 returns the ICMPv4 header of the scope.
func (p *Packet) ICMPv4() *layers.ICMPv4 { return p.icmp }

// Check decodes frame, an Ethernet frame, and runs each checker on it. If any
// of them fails where the test had not failed before, Check also logs
// gopacket's rendering of the frame.
func Check(t testing.TB, frame []byte, checkers ...Checker) {
	t.Helper()
	p := decodeFrame(frame)
	failed := t.Failed()
	for _, c := range checkers {
		c(t, p)
	}
	if !failed && t.Failed() {
		t.Logf("frame of %d bytes:\n%s", len(frame), p.render())
	}
}

// render shows the decoded headers of the frame scope with gopacket's
// LayerString, then the frame in hex. It stops at the transport header:
// gopacket's application-layer decoders are not meant for hostile bytes.
func (p *Packet) render() string {
	var b strings.Builder
	layer := func(present bool, l gopacket.Layer) {
		if present {
			b.WriteString(gopacket.LayerString(l))
			b.WriteByte('\n')
		}
	}
	layer(p.eth != nil, p.eth)
	layer(p.arp != nil, p.arp)
	layer(p.ip4 != nil, p.ip4)
	layer(p.ip6 != nil, p.ip6)
	layer(p.tcp != nil, p.tcp)
	layer(p.udp != nil, p.udp)
	layer(p.icmp != nil, p.icmp)
	for _, e := range p.errs {
		b.WriteString(e)
		b.WriteByte('\n')
	}
	const maxDump = 256
	b.WriteString(hex.Dump(p.data[:min(len(p.data), maxDump)]))
	if len(p.data) > maxDump {
		fmt.Fprintf(&b, "... %d more bytes\n", len(p.data)-maxDump)
	}
	return b.String()
}

// decodeFrame decodes the frame scope, header by header with gopacket's
// layers, stopping at the transport header. Errors are kept to explain
// missing headers to the checkers that want them.
func decodeFrame(frame []byte) *Packet {
	p := &Packet{data: frame}
	eth := &layers.Ethernet{}
	if err := decodeLayer(eth, frame); err != nil {
		p.fail("ethernet: %v", err)
		return p
	}
	p.eth = eth
	switch eth.EthernetType {
	case layers.EthernetTypeARP:
		a := &layers.ARP{}
		// gopacket computes the message length in a byte, which wraps for
		// large address sizes and makes it slice out of range; only
		// Ethernet/IPv4 ARP is checked here anyway.
		if b := eth.Payload; len(b) >= 6 && (b[4] != 6 || b[5] != 4) {
			p.fail("arp: address sizes %d and %d, not Ethernet and IPv4", b[4], b[5])
			return p
		}
		if err := decodeLayer(a, eth.Payload); err != nil {
			p.fail("arp: %v", err)
			return p
		}
		p.arp = a
	case layers.EthernetTypeIPv4:
		p.decodeIP(eth.Payload, 4)
	case layers.EthernetTypeIPv6:
		p.decodeIP(eth.Payload, 6)
	default:
		p.fail("ethertype %#04x is neither IPv4, IPv6 nor ARP", uint16(eth.EthernetType))
	}
	return p
}

// decodeIP decodes the IP header at the start of b, and the transport header
// after it unless the packet is a non-first fragment.
func (p *Packet) decodeIP(b []byte, version int) {
	p.ipAvail = len(b)
	if version == 6 {
		ip := &layers.IPv6{}
		if err := decodeLayer(ip, b); err != nil {
			p.fail("ipv6: %v", err)
			return
		}
		if ip.Version != 6 {
			p.fail("ipv6: version field is %d", ip.Version)
			return
		}
		p.ip6 = ip
		p.decodeL4(ip.NextHeader, ip.Payload)
		return
	}
	ip := &layers.IPv4{}
	if err := decodeLayer(ip, b); err != nil {
		p.fail("ipv4: %v", err)
		return
	}
	if ip.Version != 4 {
		p.fail("ipv4: version field is %d", ip.Version)
		return
	}
	p.ip4 = ip
	if ip.FragOffset != 0 {
		p.fail("ipv4: fragment at offset %d holds no transport header", int(ip.FragOffset)*8)
		return
	}
	p.decodeL4(ip.Protocol, ip.Payload)
}

// decodeL4 decodes the TCP, UDP or ICMPv4 header at the start of b. In a
// quote, a header cut short is decoded from a zero-padded copy and l4Have
// records how much of it is real.
func (p *Packet) decodeL4(proto layers.IPProtocol, b []byte) {
	p.l4Have = len(b)
	var l gopacket.DecodingLayer
	minLen := 8
	switch proto {
	case layers.IPProtocolTCP:
		p.tcp = &layers.TCP{}
		l, minLen = p.tcp, 20
	case layers.IPProtocolUDP:
		p.udp = &layers.UDP{}
		l = p.udp
	case layers.IPProtocolICMPv4:
		p.icmp = &layers.ICMPv4{}
		l = p.icmp
	default:
		return
	}
	err := decodeLayer(l, b)
	cut := len(b) < minLen || proto == layers.IPProtocolTCP && int(b[12]>>4)*4 > len(b)
	if err != nil && p.quote && cut {
		padded := make([]byte, minLen)
		copy(padded, b)
		if proto == layers.IPProtocolTCP {
			padded[12] = 5<<4 | padded[12]&0x0f // a data offset that fits the copy
		}
		err = decodeLayer(l, padded)
	}
	if err != nil {
		p.fail("%v: %v", proto, err)
		p.tcp, p.udp, p.icmp = nil, nil, nil
	}
}

// decodeLayer decodes b into l with gopacket, turning a panic inside
// gopacket on hostile bytes into an error, so that a checker reports a
// missing header instead of crashing the test.
func decodeLayer(l gopacket.DecodingLayer, b []byte) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("gopacket panicked: %v", r)
		}
	}()
	return l.DecodeFromBytes(b, gopacket.NilDecodeFeedback)
}

func (p *Packet) fail(format string, args ...any) {
	p.errs = append(p.errs, fmt.Sprintf(format, args...))
}

// summary describes what the scope holds, to explain a missing header.
func (p *Packet) summary() string {
	var parts []string
	if p.eth != nil {
		parts = append(parts, fmt.Sprintf("ethernet type %#04x", uint16(p.eth.EthernetType)))
	}
	if p.arp != nil {
		parts = append(parts, "arp")
	}
	if p.ip4 != nil {
		parts = append(parts, fmt.Sprintf("ipv4 protocol %d", p.ip4.Protocol))
	}
	if p.ip6 != nil {
		parts = append(parts, fmt.Sprintf("ipv6 next header %d", p.ip6.NextHeader))
	}
	switch {
	case p.tcp != nil:
		parts = append(parts, "tcp")
	case p.udp != nil:
		parts = append(parts, "udp")
	case p.icmp != nil:
		parts = append(parts, "icmpv4")
	}
	s := "holds " + strings.Join(parts, ", ")
	if len(parts) == 0 {
		s = "holds nothing decodable"
	}
	if len(p.errs) > 0 {
		s += "; " + strings.Join(p.errs, "; ")
	}
	return s
}

// errorf reports a mismatch, naming the scope.
func (p *Packet) errorf(t testing.TB, format string, args ...any) {
	t.Helper()
	t.Errorf(p.scope+format, args...)
}

// missing reports that the scope lacks the header a checker needs.
func (p *Packet) missing(t testing.TB, what, field string) {
	t.Helper()
	t.Errorf("%s%s: no %s header (%d bytes, %s)", p.scope, field, what, len(p.data), p.summary())
}

// runAll runs checkers on p.
func runAll(t testing.TB, p *Packet, checkers []Checker) {
	t.Helper()
	for _, c := range checkers {
		c(t, p)
	}
}

// IPv4 checks that the scope holds an IPv4 header and runs checkers on it.
func IPv4(checkers ...Checker) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.ip4 == nil {
			p.missing(t, "IPv4", "ipv4")
			return
		}
		runAll(t, p, checkers)
	}
}

// IPv6 checks that the scope holds an IPv6 header and runs checkers on it.
func IPv6(checkers ...Checker) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.ip6 == nil {
			p.missing(t, "IPv6", "ipv6")
			return
		}
		runAll(t, p, checkers)
	}
}

// IPIP checks that the scope holds an IPv4 header of protocol 4 (IPv4 in
// IPv4, RFC 2003) and runs checkers on that outer header; use Inner among
// them to check the tunnelled packet.
func IPIP(checkers ...Checker) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.ip4 == nil {
			p.missing(t, "IPv4", "ipip")
			return
		}
		if p.ip4.Protocol != layers.IPProtocolIPv4 {
			p.errorf(t, "ipip: ipv4 protocol = %d, want 4", p.ip4.Protocol)
			return
		}
		runAll(t, p, checkers)
	}
}

// Inner runs checkers on the IP packet tunnelled in the scope's IP packet
// (protocol 4 or 41). Its messages start with "inner".
func Inner(checkers ...Checker) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		var proto layers.IPProtocol
		var payload []byte
		switch {
		case p.ip4 != nil:
			proto, payload = p.ip4.Protocol, p.ip4.Payload
		case p.ip6 != nil:
			proto, payload = p.ip6.NextHeader, p.ip6.Payload
		default:
			p.missing(t, "IP", "inner")
			return
		}
		in := &Packet{scope: p.scope + "inner ", data: payload, quote: p.quote}
		switch proto {
		case layers.IPProtocolIPv4:
			in.decodeIP(payload, 4)
		case layers.IPProtocolIPv6:
			in.decodeIP(payload, 6)
		default:
			p.errorf(t, "inner: ip protocol = %d, want 4 (IPv4) or 41 (IPv6)", proto)
			return
		}
		runAll(t, in, checkers)
	}
}

// isICMPError reports whether an ICMPv4 type carries a quote of the
// offending packet (RFC 792): destination unreachable, source quench,
// redirect, time exceeded, parameter problem.
func isICMPError(typ uint8) bool {
	switch typ {
	case layers.ICMPv4TypeDestinationUnreachable, layers.ICMPv4TypeSourceQuench,
		layers.ICMPv4TypeRedirect, layers.ICMPv4TypeTimeExceeded, layers.ICMPv4TypeParameterProblem:
		return true
	}
	return false
}

// Quoted runs checkers on the IPv4 packet quoted in the scope's ICMP error.
// The quote is decoded leniently: it is usually the IP header and the first
// 8 bytes of the transport header, so the checkers for ports, TCP sequence
// number and ICMP type work, while those that need more (flags, payload,
// the transport checksum) report that the quote does not hold it.
// Messages start with "quoted".
func Quoted(checkers ...Checker) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.icmp == nil {
			p.missing(t, "ICMPv4", "quoted")
			return
		}
		if typ := p.icmp.TypeCode.Type(); !isICMPError(typ) {
			p.errorf(t, "quoted: icmp type %d is not an error and quotes nothing", typ)
			return
		}
		q := &Packet{scope: p.scope + "quoted ", data: p.icmp.Payload, quote: true}
		q.decodeIP(p.icmp.Payload, 4)
		runAll(t, q, checkers)
	}
}

// TCP checks that the scope holds a TCP header and runs checkers.
func TCP(checkers ...Checker) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.tcp == nil {
			p.missing(t, "TCP", "tcp")
			return
		}
		runAll(t, p, checkers)
	}
}

// UDP checks that the scope holds a UDP header and runs checkers.
func UDP(checkers ...Checker) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.udp == nil {
			p.missing(t, "UDP", "udp")
			return
		}
		runAll(t, p, checkers)
	}
}

// ICMPv4 checks that the scope holds an ICMPv4 header and runs checkers.
func ICMPv4(checkers ...Checker) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.icmp == nil {
			p.missing(t, "ICMPv4", "icmp")
			return
		}
		runAll(t, p, checkers)
	}
}

// ARP checks that the frame holds an ARP message and runs checkers.
func ARP(checkers ...Checker) Checker {
	return func(t testing.TB, p *Packet) {
		t.Helper()
		if p.arp == nil {
			p.missing(t, "ARP", "arp")
			return
		}
		runAll(t, p, checkers)
	}
}
