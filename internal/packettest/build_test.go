package packettest

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

// Endpoints of the tests, in 198.18.0.0/15 and 2001:2::/48.
var (
	client   = Endpoint{MAC: [6]byte{0x02, 0, 0, 0, 0, 0x0a}, Addr: netip.MustParseAddrPort("198.18.0.10:40000")}
	vip      = Endpoint{MAC: [6]byte{0x02, 0, 0, 0, 0, 0x01}, Addr: netip.MustParseAddrPort("198.18.1.1:80")}
	backend  = Endpoint{MAC: [6]byte{0x02, 0, 0, 0, 0, 0x14}, Addr: netip.MustParseAddrPort("198.19.0.20:8080")}
	router   = Endpoint{MAC: [6]byte{0x02, 0, 0, 0, 0, 0xfe}, Addr: netip.MustParseAddrPort("198.18.0.1:0")}
	client6  = Endpoint{MAC: client.MAC, Addr: netip.MustParseAddrPort("[2001:2::a]:40000")}
	vip6     = Endpoint{MAC: vip.MAC, Addr: netip.MustParseAddrPort("[2001:2::1]:443")}
	lbTunnel = Endpoint{MAC: vip.MAC, Addr: netip.MustParseAddrPort("198.18.1.254:0")}
)

// decode decodes frame fully with gopacket's Packet API, failing the test
// on any decode error: the builders' output must be clean.
func decode(t *testing.T, frame []byte) gopacket.Packet {
	t.Helper()
	p := gopacket.NewPacket(frame, layers.LayerTypeEthernet, gopacket.Default)
	if e := p.ErrorLayer(); e != nil {
		t.Fatalf("gopacket cannot decode the frame: %v\n%s", e.Error(), p.Dump())
	}
	return p
}

// verifySums recomputes the IPv4 header and transport checksums of a
// decoded IPv4 packet with Checksum: gopacket computed them, so agreement
// cross-checks two implementations.
func verifySums(t *testing.T, p gopacket.Packet) {
	t.Helper()
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if got := Checksum(ip.Contents, 0); got != 0 {
		t.Errorf("ipv4 header does not sum to zero: %#04x", got)
	}
	switch {
	case p.Layer(layers.LayerTypeTCP) != nil:
		if got := Checksum(ip.Payload, pseudoHeaderSum(ip.SrcIP, ip.DstIP, 6, len(ip.Payload))); got != 0 {
			t.Errorf("tcp segment does not sum to zero: %#04x", got)
		}
	case p.Layer(layers.LayerTypeUDP) != nil:
		if got := Checksum(ip.Payload, pseudoHeaderSum(ip.SrcIP, ip.DstIP, 17, len(ip.Payload))); got != 0 {
			t.Errorf("udp datagram does not sum to zero: %#04x", got)
		}
	case p.Layer(layers.LayerTypeICMPv4) != nil:
		if got := Checksum(ip.Payload, 0); got != 0 {
			t.Errorf("icmp message does not sum to zero: %#04x", got)
		}
	}
}

func TestTCP4(t *testing.T) {
	payload := []byte("GET / HTTP/1.1\r\n\r\n")
	mss := []byte{2, 4, 0x05, 0xb4}
	frame := TCP4(client, vip, FlagPSH|FlagACK, payload,
		WithSeq(0xdeadbeef), WithAck(0x01020304), WithTTL(17), WithDF(), WithID(0x4242),
		WithWindow(1234), WithTCPOptions(mss), WithIPOptions([]byte{0x94, 4, 0, 0}))
	p := decode(t, frame)

	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	if !bytes.Equal(eth.SrcMAC, client.MAC[:]) || !bytes.Equal(eth.DstMAC, vip.MAC[:]) || eth.EthernetType != layers.EthernetTypeIPv4 {
		t.Errorf("ethernet = %v > %v type %v", eth.SrcMAC, eth.DstMAC, eth.EthernetType)
	}
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	if !ip.SrcIP.Equal(net.IP(client.Addr.Addr().AsSlice())) || !ip.DstIP.Equal(net.IP(vip.Addr.Addr().AsSlice())) {
		t.Errorf("ipv4 %v > %v", ip.SrcIP, ip.DstIP)
	}
	if ip.TTL != 17 || ip.Id != 0x4242 || ip.Flags != layers.IPv4DontFragment || ip.Protocol != layers.IPProtocolTCP {
		t.Errorf("ipv4 ttl %d id %#x flags %v proto %v", ip.TTL, ip.Id, ip.Flags, ip.Protocol)
	}
	if ip.IHL != 6 || !bytes.Equal(ip.Contents[20:], []byte{0x94, 4, 0, 0}) {
		t.Errorf("ipv4 ihl %d options % x, want 6 and the router alert option", ip.IHL, ip.Contents[20:])
	}
	if want := 24 + 24 + len(payload); int(ip.Length) != want {
		t.Errorf("ipv4 total length %d, want %d", ip.Length, want)
	}
	tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if tcp.SrcPort != 40000 || tcp.DstPort != 80 || tcp.Seq != 0xdeadbeef || tcp.Ack != 0x01020304 || tcp.Window != 1234 {
		t.Errorf("tcp %d > %d seq %#x ack %#x win %d", tcp.SrcPort, tcp.DstPort, tcp.Seq, tcp.Ack, tcp.Window)
	}
	if got := tcpFlagsOf(tcp); got != FlagPSH|FlagACK {
		t.Errorf("tcp flags %v, want PSH|ACK", got)
	}
	if tcp.DataOffset != 6 || !bytes.Equal(tcp.Contents[20:], mss) {
		t.Errorf("tcp data offset %d options % x", tcp.DataOffset, tcp.Contents[20:])
	}
	if !bytes.Equal(tcp.Payload, payload) {
		t.Errorf("tcp payload %q, want %q", tcp.Payload, payload)
	}
	verifySums(t, p)
}

func TestTCP4Defaults(t *testing.T) {
	frame := TCP4(client, vip, FlagSYN, nil)
	if len(frame) != 60 {
		t.Errorf("len = %d, want 60 (54 padded to the Ethernet minimum)", len(frame))
	}
	p := decode(t, frame)
	ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
	tcp := p.Layer(layers.LayerTypeTCP).(*layers.TCP)
	if ip.TTL != 64 || ip.Id != 0 || ip.Flags != 0 || ip.IHL != 5 || ip.Length != 40 {
		t.Errorf("ipv4 ttl %d id %d flags %v ihl %d len %d, want 64 0 0 5 40", ip.TTL, ip.Id, ip.Flags, ip.IHL, ip.Length)
	}
	if tcp.Seq != 0 || tcp.Ack != 0 || tcp.Window != 65535 || tcp.DataOffset != 5 || !tcp.SYN || tcp.ACK {
		t.Errorf("tcp seq %d ack %d win %d off %d", tcp.Seq, tcp.Ack, tcp.Window, tcp.DataOffset)
	}
	if !bytes.Equal(frame[54:], make([]byte, 6)) {
		t.Errorf("padding = % x, want zeros", frame[54:])
	}
	verifySums(t, p)
}

func TestUDP4(t *testing.T) {
	tests := []struct {
		name    string
		opts    []Option
		payload []byte
		wantLen int
	}{
		{"payload", nil, []byte("hello"), 5},
		{"payload len", []Option{WithPayloadLen(300)}, nil, 300},
		{"empty", nil, nil, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := decode(t, UDP4(client, backend, tt.payload, tt.opts...))
			udp := p.Layer(layers.LayerTypeUDP).(*layers.UDP)
			if udp.SrcPort != 40000 || udp.DstPort != 8080 || int(udp.Length) != 8+tt.wantLen {
				t.Errorf("udp %d > %d len %d", udp.SrcPort, udp.DstPort, udp.Length)
			}
			if len(udp.Payload) != tt.wantLen {
				t.Errorf("payload %d bytes, want %d", len(udp.Payload), tt.wantLen)
			}
			for i, b := range udp.Payload {
				if tt.payload == nil && b != byte(i) {
					t.Fatalf("payload[%d] = %d, want %d", i, b, byte(i))
				}
			}
			if udp.Checksum == 0 {
				t.Error("udp checksum = 0, want computed")
			}
			verifySums(t, p)
		})
	}
}

func TestUDP4ZeroChecksum(t *testing.T) {
	p := decode(t, UDP4(client, backend, []byte("x"), WithZeroUDPChecksum()))
	if c := p.Layer(layers.LayerTypeUDP).(*layers.UDP).Checksum; c != 0 {
		t.Errorf("checksum = %#04x, want 0", c)
	}
}

// TestUDPComputedZeroSentAsOnes builds a datagram whose checksum computes to
// 0, which must go on the wire as 0xffff (RFC 768).
func TestUDPComputedZeroSentAsOnes(t *testing.T) {
	for _, tt := range []struct {
		name  string
		build func(payload []byte) []byte
		off   int
	}{
		{"ipv4", func(b []byte) []byte { return UDP4(client, backend, b) }, 14 + 20 + 6},
		{"ipv6", func(b []byte) []byte { return UDP6(client6, vip6, b) }, 14 + 40 + 6},
	} {
		t.Run(tt.name, func(t *testing.T) {
			// With a zero payload word the checksum is c = ^sum. Sending c as
			// the payload word makes the sum 0xffff, so the checksum 0.
			c := binary.BigEndian.Uint16(tt.build([]byte{0, 0})[tt.off:])
			frame := tt.build(binary.BigEndian.AppendUint16(nil, c))
			if got := binary.BigEndian.Uint16(frame[tt.off:]); got != 0xffff {
				t.Errorf("checksum field = %#04x, want 0xffff", got)
			}
			Check(t, frame, ValidChecksums())
		})
	}
}

func TestTCP6UDP6(t *testing.T) {
	frame := TCP6(client6, vip6, FlagSYN, []byte("x"), WithTTL(9), WithSeq(5))
	p := decode(t, frame)
	ip := p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if ip.HopLimit != 9 || ip.NextHeader != layers.IPProtocolTCP || ip.Length != 21 {
		t.Errorf("ipv6 hop limit %d next %v len %d", ip.HopLimit, ip.NextHeader, ip.Length)
	}
	if !ip.SrcIP.Equal(net.ParseIP("2001:2::a")) || !ip.DstIP.Equal(net.ParseIP("2001:2::1")) {
		t.Errorf("ipv6 %v > %v", ip.SrcIP, ip.DstIP)
	}
	if got := Checksum(ip.Payload, pseudoHeaderSum(ip.SrcIP, ip.DstIP, 6, len(ip.Payload))); got != 0 {
		t.Errorf("tcp over ipv6 does not sum to zero: %#04x", got)
	}
	p = decode(t, UDP6(client6, vip6, []byte("abc")))
	ip = p.Layer(layers.LayerTypeIPv6).(*layers.IPv6)
	if got := Checksum(ip.Payload, pseudoHeaderSum(ip.SrcIP, ip.DstIP, 17, len(ip.Payload))); got != 0 {
		t.Errorf("udp over ipv6 does not sum to zero: %#04x", got)
	}
}

func TestICMP4(t *testing.T) {
	p := decode(t, ICMP4Echo(client, vip, 0x1234, 7, []byte("ping"), WithTTL(3)))
	icmp := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if icmp.TypeCode != layers.CreateICMPv4TypeCode(8, 0) || icmp.Id != 0x1234 || icmp.Seq != 7 || string(icmp.Payload) != "ping" {
		t.Errorf("echo = %v id %#x seq %d payload %q", icmp.TypeCode, icmp.Id, icmp.Seq, icmp.Payload)
	}
	verifySums(t, p)

	p = decode(t, ICMP4EchoReply(vip, client, 0x1234, 7, nil))
	if tc := p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4).TypeCode; tc != layers.CreateICMPv4TypeCode(0, 0) {
		t.Errorf("echo reply type code = %v", tc)
	}

	quote := Quote(TCP4(vip, client, FlagACK, nil, WithPayloadLen(1460), WithDF()), 8)
	p = decode(t, ICMP4Error(router, vip, 3, 4, 1400, quote))
	icmp = p.Layer(layers.LayerTypeICMPv4).(*layers.ICMPv4)
	if icmp.TypeCode != layers.CreateICMPv4TypeCode(3, 4) || icmp.Id != 0 || icmp.Seq != 1400 || !bytes.Equal(icmp.Payload, quote) {
		t.Errorf("frag needed = %v unused %d mtu %d quote % x", icmp.TypeCode, icmp.Id, icmp.Seq, icmp.Payload)
	}
	verifySums(t, p)
}

func TestARP(t *testing.T) {
	p := decode(t, ARPRequest(router.MAC, router.Addr.Addr(), vip.Addr.Addr()))
	eth := p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	a := p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if !bytes.Equal(eth.DstMAC, BroadcastMAC[:]) || !bytes.Equal(eth.SrcMAC, router.MAC[:]) {
		t.Errorf("ethernet %v > %v", eth.SrcMAC, eth.DstMAC)
	}
	if a.Operation != layers.ARPRequest || !bytes.Equal(a.SourceHwAddress, router.MAC[:]) ||
		!bytes.Equal(a.SourceProtAddress, []byte{198, 18, 0, 1}) || !bytes.Equal(a.DstProtAddress, []byte{198, 18, 1, 1}) ||
		!bytes.Equal(a.DstHwAddress, make([]byte, 6)) {
		t.Errorf("arp request = %+v", a)
	}
	p = decode(t, ARPReply(vip.MAC, vip.Addr.Addr(), router.MAC, router.Addr.Addr()))
	eth = p.Layer(layers.LayerTypeEthernet).(*layers.Ethernet)
	a = p.Layer(layers.LayerTypeARP).(*layers.ARP)
	if a.Operation != layers.ARPReply || !bytes.Equal(eth.DstMAC, router.MAC[:]) || !bytes.Equal(a.DstHwAddress, router.MAC[:]) {
		t.Errorf("arp reply = %+v to %v", a, eth.DstMAC)
	}
}

func TestEncap4(t *testing.T) {
	inner := IPPacket(TCP4(client, vip, FlagSYN, nil))
	p := decode(t, Encap4(lbTunnel, backend, inner, WithTTL(8)))
	ips := []*layers.IPv4{}
	for _, l := range p.Layers() {
		if ip, ok := l.(*layers.IPv4); ok {
			ips = append(ips, ip)
		}
	}
	if len(ips) != 2 {
		t.Fatalf("decoded %d IPv4 headers, want 2", len(ips))
	}
	if ips[0].Protocol != layers.IPProtocolIPv4 || ips[0].TTL != 8 || !bytes.Equal(ips[0].Payload, inner) {
		t.Errorf("outer proto %v ttl %d", ips[0].Protocol, ips[0].TTL)
	}
	if !ips[1].DstIP.Equal(net.IP{198, 18, 1, 1}) {
		t.Errorf("inner dst %v", ips[1].DstIP)
	}
	p = decode(t, Encap4(lbTunnel, backend, IPPacket(TCP6(client6, vip6, FlagSYN, nil))))
	if proto := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4).Protocol; proto != layers.IPProtocolIPv6 {
		t.Errorf("6in4 outer protocol = %v, want 41", proto)
	}
}

func TestIPPacketAndQuote(t *testing.T) {
	frame := TCP4(client, vip, FlagSYN, nil) // 54 bytes padded to 60
	ip := IPPacket(frame)
	if len(ip) != 40 || !bytes.Equal(ip, frame[14:54]) {
		t.Errorf("IPPacket = % x, want the 40 bytes after the Ethernet header", ip)
	}
	ip[0] = 0
	if frame[14] != 0x45 {
		t.Error("IPPacket aliases the frame")
	}
	if q := Quote(frame, 8); len(q) != 28 || !bytes.Equal(q, frame[14:42]) {
		t.Errorf("Quote(8) = % x", q)
	}
	if q := Quote(frame, 100); len(q) != 40 {
		t.Errorf("Quote(100) = %d bytes, want the whole 40-byte packet", len(q))
	}
	if ip6 := IPPacket(UDP6(client6, vip6, []byte("abc"))); len(ip6) != 40+8+3 {
		t.Errorf("IPPacket of IPv6 = %d bytes", len(ip6))
	}
}

func TestFragment4(t *testing.T) {
	frame := UDP4(client, backend, nil, WithPayloadLen(2000), WithID(99))
	whole := IPPacket(frame)[20:]
	frags := Fragment4(frame, 800)
	if len(frags) != 3 {
		t.Fatalf("got %d fragments, want 3", len(frags))
	}
	var got []byte
	for i, f := range frags {
		p := decode(t, f)
		ip := p.Layer(layers.LayerTypeIPv4).(*layers.IPv4)
		wantMF := i < len(frags)-1
		if ip.Flags&layers.IPv4MoreFragments != 0 != wantMF || int(ip.FragOffset)*8 != len(got) || ip.Id != 99 {
			t.Errorf("fragment %d: flags %v offset %d id %d", i, ip.Flags, ip.FragOffset, ip.Id)
		}
		if Checksum(ip.Contents, 0) != 0 {
			t.Errorf("fragment %d: bad header checksum", i)
		}
		got = append(got, ip.Payload...)
	}
	if !bytes.Equal(got, whole) {
		t.Error("fragments do not reassemble to the datagram")
	}
}

func TestTCPFlagsString(t *testing.T) {
	for f, want := range map[TCPFlags]string{
		0:                 "none",
		FlagSYN:           "SYN",
		FlagSYN | FlagACK: "SYN|ACK",
		0xff:              "FIN|SYN|RST|PSH|ACK|URG|ECE|CWR",
	} {
		if got := f.String(); got != want {
			t.Errorf("TCPFlags(%#x).String() = %q, want %q", uint8(f), got, want)
		}
	}
}

// TestBuilderMisuse checks that builders refuse what they cannot build,
// rather than build something else.
func TestBuilderMisuse(t *testing.T) {
	tests := []struct {
		name  string
		build func()
		want  string
	}{
		{"option not for udp", func() { UDP4(client, vip, nil, WithSeq(1)) }, "UDP4 does not take WithSeq"},
		{"option not for ipv6", func() { TCP6(client6, vip6, 0, nil, WithDF(), WithID(1)) }, "TCP6 does not take WithDF, WithID"},
		{"zero checksum over ipv6", func() { UDP6(client6, vip6, nil, WithZeroUDPChecksum()) }, "WithZeroUDPChecksum"},
		{"payload twice", func() { TCP4(client, vip, 0, []byte("x"), WithPayloadLen(3)) }, "both a payload and WithPayloadLen"},
		{"ipv6 address in TCP4", func() { TCP4(client6, vip, 0, nil) }, "TCP4 needs an IPv4 address"},
		{"ipv4 address in UDP6", func() { UDP6(client, vip6, nil) }, "UDP6 needs an IPv6 address"},
		{"zero endpoint", func() { UDP4(Endpoint{}, vip, nil) }, "needs an IPv4 address"},
		{"ip options not aligned", func() { TCP4(client, vip, 0, nil, WithIPOptions([]byte{1, 1, 1})) }, "multiple of 4"},
		{"ip option overruns", func() { TCP4(client, vip, 0, nil, WithIPOptions([]byte{7, 9, 0, 0})) }, "malformed IP option"},
		{"tcp option too short", func() { TCP4(client, vip, 0, nil, WithTCPOptions([]byte{2, 1, 0, 0})) }, "malformed TCP option"},
		{"negative payload len", func() { WithPayloadLen(-1) }, "WithPayloadLen(-1)"},
		{"fragment size", func() { Fragment4(UDP4(client, vip, nil), 100) }, "multiple of 8"},
		{"fragment DF", func() { Fragment4(UDP4(client, vip, nil, WithDF()), 8) }, "DF"},
		{"encap non-IP", func() { Encap4(lbTunnel, backend, []byte{0x10}) }, "not an IP packet"},
		{"IPPacket of ARP", func() { IPPacket(ARPRequest(router.MAC, router.Addr.Addr(), vip.Addr.Addr())) }, "does not carry IP"},
		{"IPPacket of truncated", func() { IPPacket(TCP4(client, vip, 0, nil)[:40]) }, "length field says 40"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			defer func() {
				r := recover()
				if s, _ := r.(string); !strings.Contains(s, tt.want) {
					t.Errorf("panic %v, want one containing %q", r, tt.want)
				}
			}()
			tt.build()
		})
	}
}

// TestIPOptionsVerbatim checks that option lists reach the wire byte for
// byte, padding included.
func TestIPOptionsVerbatim(t *testing.T) {
	for _, opts := range [][]byte{
		{1, 1, 1, 0},
		{0x94, 4, 0, 0},
		{7, 7, 4, 0, 0, 0, 0, 1},                 // record route with one slot, then NOP
		{0x44, 12, 5, 0, 0, 0, 0, 0, 0, 0, 0, 0}, // timestamp
	} {
		ip := IPPacket(TCP4(client, vip, 0, nil, WithIPOptions(opts)))
		if got := ip[20 : 20+len(opts)]; !bytes.Equal(got, opts) || int(ip[0]&0xf) != 5+len(opts)/4 {
			t.Errorf("options % x: got % x, ihl %d", opts, got, ip[0]&0xf)
		}
		if Checksum(ip[:20+len(opts)], 0) != 0 {
			t.Errorf("options % x: bad header checksum", opts)
		}
	}
}

func BenchmarkBuild(b *testing.B) {
	for _, bb := range []struct {
		name  string
		build func() []byte
	}{
		{"tcp4", func() []byte { return TCP4(client, vip, FlagSYN, nil) }},
		{"udp4-1400", func() []byte { return UDP4(client, vip, nil, WithPayloadLen(1400)) }},
		{"icmp4-error", func() []byte { return ICMP4Error(router, vip, 3, 4, 1400, make([]byte, 28)) }},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				bb.build()
			}
		})
	}
}
