package packettest

import (
	"go/ast"
	"go/parser"
	"go/token"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

// Frames the checker tests run on.
var (
	tcpData = TCP4(client, vip, FlagPSH|FlagACK, []byte("hello, world"), // 66 bytes, unpadded
		WithSeq(5), WithAck(7), WithTTL(63), WithDF(), WithID(9))
	tcpSyn   = TCP4(client, vip, FlagSYN, nil) // padded to 60 bytes
	udpData  = UDP4(client, backend, []byte("datagram"))
	udpZero  = UDP4(client, backend, []byte("datagram"), WithZeroUDPChecksum())
	echo     = ICMP4Echo(client, vip, 0x4242, 3, []byte("ping ping ping ping ping")) // unpadded
	reply    = TCP4(vip, client, FlagPSH|FlagACK, nil, WithPayloadLen(1460), WithSeq(11), WithAck(12), WithDF())
	fragNeed = ICMP4Error(router, vip, 3, 4, 1400, Quote(reply, 8))
	fullQ    = ICMP4Error(router, client, 11, 0, 0, IPPacket(tcpData)) // quotes the whole packet
	arpReq   = ARPRequest(router.MAC, router.Addr.Addr(), vip.Addr.Addr())
	tcp6     = TCP6(client6, vip6, FlagSYN, []byte("v6"), WithTTL(5))
	udp6     = UDP6(client6, vip6, []byte("v6"))
	ipip     = Encap4(lbTunnel, backend, IPPacket(tcpData), WithTTL(64))
	frags    = Fragment4(UDP4(client, backend, nil, WithPayloadLen(100)), 64)
)

var (
	addrVIP    = vip.Addr.Addr()
	addrClient = client.Addr.Addr()
	otherAddr  = netip.MustParseAddr("198.19.255.1")
	otherMAC   = [6]byte{0x02, 0, 0, 0, 0, 0x99}
)

// flip returns a copy of frame with byte i inverted.
func flip(frame []byte, i int) []byte {
	f := clone(frame)
	f[i] ^= 0xff
	return f
}

// patch returns a copy of frame with b written at offset i.
func patch(frame []byte, i int, b ...byte) []byte {
	f := clone(frame)
	copy(f[i:], b)
	return f
}

type checkCase struct {
	name    string
	fn      string // the constructor under test, for TestEveryCheckerCanFail
	frame   []byte
	checker Checker
	want    []string // substrings of the expected errors, one per error; none to pass
}

func checkCases() []checkCase {
	const l4 = 14 + 20 // transport offset in an IPv4 frame without options
	badQuote := Quote(reply, 8)
	badQuote[8]++ // quoted TTL without fixing the quoted header checksum
	badInner := IPPacket(tcpData)
	badInner[len(badInner)-1]++ // last payload byte: only the TCP checksum breaks

	return []checkCase{
		// Ethernet.
		{"eth src", "EthSrc", tcpData, EthSrc(client.MAC), nil},
		{"eth src wrong", "EthSrc", tcpData, EthSrc(otherMAC), []string{"eth src = 02:00:00:00:00:0a, want 02:00:00:00:00:99"}},
		{"eth dst", "EthDst", tcpData, EthDst(vip.MAC), nil},
		{"eth dst wrong", "EthDst", tcpData, EthDst(otherMAC), []string{"eth dst = 02:00:00:00:00:01, want 02:00:00:00:00:99"}},
		{"ethertype", "EtherType", arpReq, EtherType(0x0806), nil},
		{"ethertype wrong", "EtherType", tcp6, EtherType(0x0800), []string{"ethertype = 0x86dd, want 0x0800"}},
		{"eth of a runt", "EthSrc", tcpData[:10], EthSrc(client.MAC), []string{"eth src: no Ethernet header (10 bytes"}},

		// IP.
		{"src", "Src", tcpData, Src(addrClient), nil},
		{"src wrong", "Src", tcpData, Src(otherAddr), []string{"ipv4 src = 198.18.0.10, want 198.19.255.1"}},
		{"src mapped", "Src", tcpData, Src(netip.AddrFrom16(addrClient.As16())), nil},
		{"dst", "Dst", tcpData, Dst(addrVIP), nil},
		{"dst wrong", "Dst", tcpData, Dst(addrClient), []string{"ipv4 dst = 198.18.1.1, want 198.18.0.10"}},
		{"dst ipv6", "Dst", tcp6, Dst(vip6.Addr.Addr()), nil},
		{"dst ipv6 wrong", "Dst", tcp6, Dst(addrVIP), []string{"ipv6 dst = 2001:2::1, want 198.18.1.1"}},
		{"dst of arp", "Dst", arpReq, Dst(addrVIP), []string{"dst: no IP header (60 bytes, holds ethernet type 0x0806, arp)"}},
		{"ttl", "TTL", tcpData, TTL(63), nil},
		{"ttl wrong", "TTL", tcpData, TTL(64), []string{"ipv4 ttl = 63, want 64"}},
		{"hop limit", "TTL", tcp6, TTL(5), nil},
		{"hop limit wrong", "TTL", tcp6, TTL(6), []string{"ipv6 hop limit = 5, want 6"}},
		{"proto", "Proto", udpData, Proto(17), nil},
		{"proto wrong", "Proto", udpData, Proto(6), []string{"ipv4 protocol = 17, want 6"}},
		{"next header wrong", "Proto", tcp6, Proto(17), []string{"ipv6 next header = 6, want 17"}},
		{"df", "DF", tcpData, DF(true), nil},
		{"df clear", "DF", udpData, DF(false), nil},
		{"df wrong", "DF", udpData, DF(true), []string{"ipv4 df = false, want true"}},
		{"df of ipv6", "DF", tcp6, DF(false), []string{"ipv4 df: no IPv4 header"}},
		{"id", "ID", tcpData, ID(9), nil},
		{"id wrong", "ID", tcpData, ID(10), []string{"ipv4 id = 9, want 10"}},

		// Lengths.
		{"total len", "TotalLenMatches", tcpData, TotalLenMatches(), nil},
		{"total len padded", "TotalLenMatches", tcpSyn, TotalLenMatches(), nil},
		{"total len ipv6", "TotalLenMatches", udp6, TotalLenMatches(), nil},
		{"total len short", "TotalLenMatches", patch(tcpData, 14+3, byte(len(tcpData)-14-1)), TotalLenMatches(),
			[]string{"ipv4 total length = 51, want 52 (the bytes after the Ethernet header)"}},
		{"total len trailing bytes", "TotalLenMatches", append(clone(tcpData), 0, 0), TotalLenMatches(),
			[]string{"ipv4 total length = 52, want 54"}},
		{"total len beyond frame", "TotalLenMatches", tcpData[:len(tcpData)-1], TotalLenMatches(),
			[]string{"ipv4 total length = 52, want 51"}},
		{"ipv6 payload len wrong", "TotalLenMatches", patch(udp6, 14+5, 9), TotalLenMatches(),
			[]string{"ipv6 payload length = 9, want 10", "udp length = 10, want 9 (the ipv6 payload length)"}},
		{"udp len wrong", "TotalLenMatches", patch(udpData, l4+5, 15), TotalLenMatches(),
			[]string{"udp length = 15, want 16"}},
		{"total len in quote", "TotalLenMatches", fragNeed, Quoted(TotalLenMatches()), nil},
		{"total len in quote too short", "TotalLenMatches", ICMP4Error(router, vip, 3, 4, 1400, patch(Quote(reply, 8), 2, 0, 24)),
			Quoted(TotalLenMatches()), []string{"quoted ipv4 total length = 24, but the quote holds 28 bytes"}},
		{"total len inner", "TotalLenMatches", ipip, Inner(TotalLenMatches()), nil},
		{"total len inner padded", "TotalLenMatches", Encap4(lbTunnel, backend, tcpSyn[14:]), Inner(TotalLenMatches()),
			[]string{"inner ipv4 total length = 40, want 46 (the bytes the outer packet carries)"}},

		// Checksums.
		{"ipv4 checksum", "ValidIPv4Checksum", tcpData, ValidIPv4Checksum(), nil},
		{"ipv4 checksum wrong", "ValidIPv4Checksum", flip(tcpData, 14+8), ValidIPv4Checksum(), []string{"ipv4 checksum = 0x"}},
		{"l4 checksum tcp", "ValidL4Checksum", tcpData, ValidL4Checksum(), nil},
		{"l4 checksum tcp wrong", "ValidL4Checksum", flip(tcpData, len(tcpData)-1), ValidL4Checksum(), []string{"tcp checksum = 0x"}},
		{"l4 checksum address changed", "ValidL4Checksum", mutateIPv4(tcpData, func(ip []byte) { ip[19]++ }), ValidL4Checksum(),
			[]string{"tcp checksum = 0x"}},
		{"l4 checksum udp", "ValidL4Checksum", udpData, ValidL4Checksum(), nil},
		{"l4 checksum udp wrong", "ValidL4Checksum", flip(udpData, l4+8), ValidL4Checksum(), []string{"udp checksum = 0x"}},
		{"l4 checksum udp zero", "ValidL4Checksum", udpZero, ValidL4Checksum(), []string{"udp checksum = 0 (none), want 0x"}},
		{"l4 checksum tcp6", "ValidL4Checksum", tcp6, ValidL4Checksum(), nil},
		{"l4 checksum tcp6 wrong", "ValidL4Checksum", flip(tcp6, len(tcp6)-1), ValidL4Checksum(), []string{"tcp checksum = 0x"}},
		{"l4 checksum udp6 zero", "ValidL4Checksum", patch(udp6, 14+40+6, 0, 0), ValidL4Checksum(), []string{"udp checksum = 0, invalid over IPv6"}},
		{"l4 checksum fragment", "ValidL4Checksum", frags[0], ValidL4Checksum(), []string{"udp checksum: packet is a fragment"}},
		{"l4 checksum cut short", "ValidL4Checksum", tcpData[:len(tcpData)-2], ValidL4Checksum(), []string{"tcp checksum: the ipv4 packet is cut short (50 of 52 bytes)"}},
		{"l4 checksum of icmp", "ValidL4Checksum", echo, ValidL4Checksum(), []string{"l4 checksum: no TCP or UDP header"}},
		{"zero udp checksum", "ZeroUDPChecksum", udpZero, ZeroUDPChecksum(), nil},
		{"zero udp checksum wrong", "ZeroUDPChecksum", udpData, ZeroUDPChecksum(), []string{"want 0 (none)"}},
		{"icmp checksum", "ValidICMPChecksum", fragNeed, ValidICMPChecksum(), nil},
		{"icmp checksum wrong", "ValidICMPChecksum", flip(echo, len(echo)-1), ValidICMPChecksum(), []string{"icmp checksum = 0x"}},
		{"icmp checksum of tcp", "ValidICMPChecksum", tcpData, ValidICMPChecksum(), []string{"no ICMPv4 header"}},

		// ValidChecksums catches each kind of checksum error on its own.
		{"all checksums tcp", "ValidChecksums", tcpData, ValidChecksums(), nil},
		{"all checksums udp", "ValidChecksums", udpData, ValidChecksums(), nil},
		{"all checksums icmp error", "ValidChecksums", fragNeed, ValidChecksums(), nil},
		{"all checksums ipv6", "ValidChecksums", tcp6, ValidChecksums(), nil},
		{"all checksums ipip", "ValidChecksums", ipip, ValidChecksums(), nil},
		{"all checksums fragments", "ValidChecksums", frags[1], ValidChecksums(), nil},
		{"all checksums ip header", "ValidChecksums", flip(tcpData, 14+8), ValidChecksums(), []string{"ipv4 checksum"}},
		{"all checksums tcp segment", "ValidChecksums", flip(tcpData, len(tcpData)-1), ValidChecksums(), []string{"tcp checksum"}},
		{"all checksums udp zero", "ValidChecksums", udpZero, ValidChecksums(), []string{"udp checksum = 0 (none)"}},
		{"all checksums icmp", "ValidChecksums", flip(echo, len(echo)-1), ValidChecksums(), []string{"icmp checksum"}},
		{"all checksums quoted header", "ValidChecksums", ICMP4Error(router, vip, 3, 4, 1400, badQuote), ValidChecksums(),
			[]string{"quoted ipv4 checksum"}},
		{"all checksums inner", "ValidChecksums", Encap4(lbTunnel, backend, badInner), ValidChecksums(),
			[]string{"inner tcp checksum"}},
		{"all checksums arp", "ValidChecksums", arpReq, ValidChecksums(), []string{"checksums: no IP header"}},

		// Transport.
		{"src port", "SrcPort", tcpData, SrcPort(40000), nil},
		{"src port wrong", "SrcPort", tcpData, SrcPort(1), []string{"tcp src port = 40000, want 1"}},
		{"dst port", "DstPort", tcpData, DstPort(80), nil},
		{"dst port wrong", "DstPort", tcpData, DstPort(81), []string{"tcp dst port = 80, want 81"}},
		{"udp src port", "SrcPort", udpData, SrcPort(40000), nil},
		{"udp dst port wrong", "DstPort", udpData, DstPort(80), []string{"udp dst port = 8080, want 80"}},
		{"port of icmp", "DstPort", echo, DstPort(80), []string{"dst port: no TCP or UDP header"}},
		{"port of later fragment", "DstPort", frags[1], DstPort(8080), []string{"fragment at offset 64 holds no transport header"}},
		{"flags", "TCPFlagsAre", tcpData, TCPFlagsAre(FlagPSH | FlagACK), nil},
		{"flags wrong", "TCPFlagsAre", tcpData, TCPFlagsAre(FlagACK), []string{"tcp flags = PSH|ACK, want ACK"}},
		{"flags of udp", "TCPFlagsAre", udpData, TCPFlagsAre(FlagACK), []string{"tcp flags: no TCP header"}},
		{"seq", "Seq", tcpData, Seq(5), nil},
		{"seq wrong", "Seq", tcpData, Seq(6), []string{"tcp seq = 5, want 6"}},
		{"ack", "Ack", tcpData, Ack(7), nil},
		{"ack wrong", "Ack", tcpData, Ack(8), []string{"tcp ack = 7, want 8"}},
		{"payload", "Payload", tcpData, Payload([]byte("hello, world")), nil},
		{"payload wrong", "Payload", tcpData, Payload([]byte("hello, there")), []string{"tcp payload = 12 bytes, from offset 7: [77 6f 72 6c 64], want 12 bytes, from offset 7: [74 68 65 72 65]"}},
		{"payload udp", "Payload", udpData, Payload([]byte("datagram")), nil},
		{"payload icmp", "Payload", echo, Payload([]byte("ping ping ping ping ping")), nil},
		{"payload of arp", "Payload", arpReq, Payload(nil), []string{"payload: no TCP, UDP or ICMPv4 header"}},
		{"bad tcp offset", "TCP", mutateTCP(tcpData, func(h []byte) { h[12] = 4 << 4 }), TCP(),
			[]string{"tcp: no TCP header (66 bytes, holds ethernet type 0x0800, ipv4 protocol 6; TCP: Invalid TCP data offset 4 < 5)"}},

		// ICMP.
		{"icmp type", "ICMPType", fragNeed, ICMPType(3), nil},
		{"icmp type wrong", "ICMPType", echo, ICMPType(0), []string{"icmp type = 8, want 0"}},
		{"icmp code", "ICMPCode", fragNeed, ICMPCode(4), nil},
		{"icmp code wrong", "ICMPCode", fragNeed, ICMPCode(3), []string{"icmp code = 4, want 3"}},
		{"echo id", "EchoID", echo, EchoID(0x4242), nil},
		{"echo id wrong", "EchoID", echo, EchoID(1), []string{"icmp echo id = 16962, want 1"}},
		{"echo seq", "EchoSeq", echo, EchoSeq(3), nil},
		{"echo seq wrong", "EchoSeq", echo, EchoSeq(4), []string{"icmp echo seq = 3, want 4"}},
		{"mtu", "NextHopMTU", fragNeed, NextHopMTU(1400), nil},
		{"mtu wrong", "NextHopMTU", fragNeed, NextHopMTU(1500), []string{"icmp next-hop mtu = 1400, want 1500"}},
		{"mtu of tcp", "NextHopMTU", tcpData, NextHopMTU(1500), []string{"no ICMPv4 header"}},

		// Quotes: the fields in the first 8 bytes are there, the rest not.
		{"quoted", "Quoted", fragNeed, Quoted(
			IPv4(Src(addrVIP), Dst(addrClient), Proto(6), TTL(64), DF(true), ValidIPv4Checksum()),
			TCP(SrcPort(80), DstPort(40000), Seq(11)), ValidChecksums()), nil},
		{"quoted wrong", "Quoted", fragNeed, Quoted(Dst(addrVIP), DstPort(80), Seq(12)), []string{
			"quoted ipv4 dst = 198.18.0.10, want 198.18.1.1",
			"quoted tcp dst port = 40000, want 80",
			"quoted tcp seq = 11, want 12",
		}},
		{"quoted beyond quote", "Quoted", fragNeed, Quoted(Ack(12), TCPFlagsAre(FlagACK), Payload(nil), ValidL4Checksum()), []string{
			"quoted tcp ack: the quote holds 8 bytes of the transport header, 12 needed",
			"quoted tcp flags: the quote holds 8 bytes of the transport header, 14 needed",
			"quoted tcp payload: the quote does not hold the whole packet",
			"quoted tcp checksum: the ipv4 packet is cut short (28 of 1500 bytes)",
		}},
		{"quoted whole packet", "Quoted", fullQ, Quoted(TCPFlagsAre(FlagPSH|FlagACK), Ack(7), Payload([]byte("hello, world")), ValidL4Checksum()), nil},
		{"quoted udp", "Quoted", ICMP4Error(router, client, 3, 3, 0, Quote(udpData, 8)),
			Quoted(UDP(SrcPort(40000), DstPort(8080), ZeroUDPChecksum())), []string{"quoted udp checksum = 0x"}},
		{"quoted 4 bytes", "Quoted", ICMP4Error(router, vip, 3, 4, 1400, Quote(reply, 4)), Quoted(DstPort(40000), Seq(11)),
			[]string{"quoted tcp seq: the quote holds 4 bytes of the transport header, 8 needed"}},
		{"quoted by echo", "Quoted", echo, Quoted(), []string{"quoted: icmp type 8 is not an error"}},
		{"quoted of tcp", "Quoted", tcpData, Quoted(), []string{"quoted: no ICMPv4 header"}},
		{"quoted garbage", "Quoted", ICMP4Error(router, vip, 3, 4, 0, []byte{1, 2, 3}), Quoted(Dst(addrVIP)),
			[]string{"quoted dst: no IP header"}},

		// Tunnels.
		{"ipip", "IPIP", ipip, IPIP(Src(lbTunnel.Addr.Addr()), Dst(backend.Addr.Addr()), Proto(4),
			Inner(IPv4(Src(addrClient), Dst(addrVIP), TTL(63)), TCP(DstPort(80)), ValidChecksums())), nil},
		{"ipip of tcp", "IPIP", tcpData, IPIP(), []string{"ipip: ipv4 protocol = 6, want 4"}},
		{"ipip of ipv6", "IPIP", tcp6, IPIP(), []string{"ipip: no IPv4 header"}},
		{"inner wrong", "Inner", ipip, Inner(Dst(backend.Addr.Addr()), DstPort(8080)), []string{
			"inner ipv4 dst = 198.18.1.1, want 198.19.0.20",
			"inner tcp dst port = 80, want 8080",
		}},
		{"inner 6in4", "Inner", Encap4(lbTunnel, backend, IPPacket(tcp6)), Inner(IPv6(Dst(vip6.Addr.Addr())), ValidChecksums()), nil},
		{"inner of tcp", "Inner", tcpData, Inner(), []string{"inner: ip protocol = 6, want 4 (IPv4) or 41 (IPv6)"}},
		{"inner of arp", "Inner", arpReq, Inner(), []string{"inner: no IP header"}},

		// Scope assertions.
		{"ipv4", "IPv4", tcpData, IPv4(Dst(addrVIP)), nil},
		{"ipv4 runs its checkers", "IPv4", tcpData, IPv4(Dst(addrClient)), []string{"ipv4 dst"}},
		{"ipv4 of arp", "IPv4", arpReq, IPv4(), []string{"ipv4: no IPv4 header"}},
		{"ipv4 bad ihl", "IPv4", mutateIPv4(tcpData, func(ip []byte) { ip[0] = 0x44 }), IPv4(), []string{"IP header length (4 < 5)"}},
		{"ipv4 bad version", "IPv4", mutateIPv4(tcpData, func(ip []byte) { ip[0] = 0x65 }), IPv4(), []string{"version field is 6"}},
		{"ipv6", "IPv6", tcp6, IPv6(Src(client6.Addr.Addr())), nil},
		{"ipv6 of ipv4", "IPv6", tcpData, IPv6(), []string{"ipv6: no IPv6 header"}},
		{"tcp", "TCP", tcpData, TCP(Seq(5)), nil},
		{"tcp runs its checkers", "TCP", tcpData, TCP(Seq(4)), []string{"tcp seq"}},
		{"tcp of udp", "TCP", udpData, TCP(), []string{"tcp: no TCP header"}},
		{"udp", "UDP", udpData, UDP(DstPort(8080)), nil},
		{"udp of tcp", "UDP", tcpData, UDP(), []string{"udp: no UDP header"}},
		{"icmp", "ICMPv4", echo, ICMPv4(ICMPType(8)), nil},
		{"icmp of udp", "ICMPv4", udpData, ICMPv4(), []string{"icmp: no ICMPv4 header"}},
		{"arp", "ARP", arpReq, ARP(ARPOp(1)), nil},
		{"arp of tcp", "ARP", tcpData, ARP(), []string{"arp: no ARP header"}},
		{"arp odd sizes", "ARP", patch(arpReq, 14+4, 200, 200), ARP(), []string{"arp: address sizes 200 and 200, not Ethernet and IPv4"}},

		// ARP.
		{"arp op wrong", "ARPOp", arpReq, ARPOp(2), []string{"arp operation = 1, want 2"}},
		{"arp sender", "ARPSender", arpReq, ARPSender(router.MAC, router.Addr.Addr()), nil},
		{"arp sender wrong", "ARPSender", arpReq, ARPSender(otherMAC, otherAddr), []string{
			"arp sender hardware address = 02:00:00:00:00:fe, want 02:00:00:00:00:99",
			"arp sender protocol address = 198.18.0.1, want 198.19.255.1",
		}},
		{"arp target", "ARPTarget", arpReq, ARPTarget([6]byte{}, addrVIP), nil},
		{"arp target wrong", "ARPTarget", arpReq, ARPTarget(vip.MAC, addrVIP), []string{"arp target hardware address = 00:00:00:00:00:00"}},
		{"arp op of tcp", "ARPOp", tcpData, ARPOp(1), []string{"no ARP header"}},
	}
}

func TestCheckers(t *testing.T) {
	for _, tt := range checkCases() {
		t.Run(tt.name, func(t *testing.T) {
			r := run(tt.frame, tt.checker)
			r.wantErrors(t, tt.want...)
		})
	}
}

// TestEveryCheckerCanFail reads the package source for every exported
// function returning a Checker and requires a failing case for each in
// TestCheckers: a checker that cannot fail is a defect.
func TestEveryCheckerCanFail(t *testing.T) {
	failing := map[string]bool{}
	for _, c := range checkCases() {
		if len(c.want) > 0 {
			failing[c.fn] = true
		}
	}
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	var constructors []string
	fset := token.NewFileSet()
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		src, err := os.ReadFile(name)
		if err != nil {
			t.Fatal(err)
		}
		f, err := parser.ParseFile(fset, name, src, 0)
		if err != nil {
			t.Fatal(err)
		}
		for _, d := range f.Decls {
			fn, ok := d.(*ast.FuncDecl)
			if !ok || fn.Recv != nil || !fn.Name.IsExported() || fn.Type.Results == nil || len(fn.Type.Results.List) != 1 {
				continue
			}
			if id, ok := fn.Type.Results.List[0].Type.(*ast.Ident); ok && id.Name == "Checker" {
				constructors = append(constructors, fn.Name.Name)
			}
		}
	}
	if len(constructors) < 30 {
		t.Fatalf("found only %d checker constructors; is the source scan broken?", len(constructors))
	}
	slices.Sort(constructors)
	for _, c := range constructors {
		if !failing[c] {
			t.Errorf("no failing case for %s in checkCases", c)
		}
	}
}

// TestCheckReportsEveryMismatch checks that one Check call reports each
// wrong field, not just the first.
func TestCheckReportsEveryMismatch(t *testing.T) {
	r := run(tcpData, EthDst(otherMAC), IPv4(Dst(otherAddr), TTL(1), TCP(DstPort(1), TCPFlagsAre(FlagSYN))), ValidChecksums())
	r.wantErrors(t, "eth dst", "ipv4 dst", "ipv4 ttl", "tcp dst port", "tcp flags")
}

// TestCheckLogsFrame checks that Check logs a rendering of the frame when a
// checker fails, and stays quiet otherwise.
func TestCheckLogsFrame(t *testing.T) {
	r := run(tcpData, Dst(addrVIP))
	if len(r.logs) != 0 {
		t.Errorf("passing Check logged %q", r.logs)
	}
	r = run(tcpData, Dst(otherAddr))
	if len(r.logs) != 1 || !strings.Contains(r.logs[0], "frame of 66 bytes") || !strings.Contains(r.logs[0], "TCP") {
		t.Errorf("failing Check logged %q, want one rendering of the frame", r.logs)
	}
}

// TestCheckDoesNotModify checks that checking leaves the frame alone.
func TestCheckDoesNotModify(t *testing.T) {
	frame := clone(fragNeed)
	run(frame, ValidChecksums(), Quoted(Seq(1), TCPFlagsAre(0)), Payload(nil))
	if string(frame) != string(fragNeed) {
		t.Error("Check modified the frame")
	}
}

func BenchmarkCheck(b *testing.B) {
	for _, bb := range []struct {
		name     string
		frame    []byte
		checkers []Checker
	}{
		{"tcp4", tcpData, []Checker{IPv4(Dst(addrVIP), DstPort(80), TCPFlagsAre(FlagPSH|FlagACK), ValidChecksums())}},
		{"icmp-error", fragNeed, []Checker{ICMPType(3), Quoted(Dst(addrClient), SrcPort(80)), ValidChecksums()}},
	} {
		b.Run(bb.name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				Check(b, bb.frame, bb.checkers...)
			}
		})
	}
}

func TestDecode(t *testing.T) {
	p := Decode(tcpData)
	if p.Ethernet() == nil || p.IPv4() == nil || p.TCP() == nil {
		t.Fatal("Decode lost a header of a TCP frame")
	}
	if p.IPv6() != nil || p.UDP() != nil || p.ICMPv4() != nil || p.ARP() != nil || p.IsQuote() {
		t.Error("Decode invented a header")
	}
	if p.TCP().DstPort != 80 || string(p.TCP().Payload) != "hello, world" || len(p.Bytes()) != len(tcpData) {
		t.Errorf("tcp dst port %d payload %q", p.TCP().DstPort, p.TCP().Payload)
	}
	if p := Decode(arpReq); p.ARP() == nil || p.IPv4() != nil {
		t.Error("Decode of ARP")
	}
}
