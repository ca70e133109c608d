package packettest

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"
)

var allWants = map[string]bool{
	WantTCP: true, WantUDP: true, WantICMP: true, WantARP: true, WantIPv6: true,
	WantFragment: true, WantIPv4Options: true, WantTruncated: true, WantBadVersion: true,
	WantBadIHL: true, WantBadTotalLength: true, WantBadIPChecksum: true,
	WantUnknownProto: true, WantBadTCPOffset: true,
}

// classify is a reference parser written from the RFCs over raw bytes,
// applying the precedence documented on Fixtures. It is the test's own
// statement of what each Want means.
func classify(f []byte) string {
	if len(f) < 14 {
		return WantTruncated
	}
	switch binary.BigEndian.Uint16(f[12:]) {
	case 0x0806:
		if len(f) < 14+28 {
			return WantTruncated
		}
		return WantARP
	case 0x86dd:
		return WantIPv6
	case 0x0800:
	default:
		return "other"
	}
	ip := f[14:]
	if len(ip) < 20 {
		return WantTruncated
	}
	if ip[0]>>4 != 4 {
		return WantBadVersion
	}
	ihl := int(ip[0]&0x0f) * 4
	if ihl < 20 {
		return WantBadIHL
	}
	if len(ip) < ihl {
		return WantTruncated
	}
	total := int(binary.BigEndian.Uint16(ip[2:]))
	if total < ihl || total > len(ip) {
		return WantBadTotalLength
	}
	if Checksum(ip[:ihl], 0) != 0 {
		return WantBadIPChecksum
	}
	if binary.BigEndian.Uint16(ip[6:])&0x3fff != 0 {
		return WantFragment
	}
	if ihl > 20 {
		return WantIPv4Options
	}
	l4 := ip[ihl:total]
	switch ip[9] {
	case 6:
		if len(l4) < 20 {
			return WantTruncated
		}
		if off := int(l4[12]>>4) * 4; off < 20 || off > len(l4) {
			return WantBadTCPOffset
		}
		return WantTCP
	case 17:
		if len(l4) < 8 {
			return WantTruncated
		}
		return WantUDP
	case 1:
		if len(l4) < 8 {
			return WantTruncated
		}
		return WantICMP
	}
	return WantUnknownProto
}

func TestFixtures(t *testing.T) {
	names := map[string]bool{}
	for _, f := range Fixtures() {
		t.Run(f.Name, func(t *testing.T) {
			if names[f.Name] {
				t.Errorf("duplicate name")
			}
			names[f.Name] = true
			if !allWants[f.Want] {
				t.Errorf("Want %q is not one of the Want constants", f.Want)
			}
			if got := classify(f.Frame); got != f.Want {
				t.Errorf("reference classification %q, want %q", got, f.Want)
			}
		})
	}
	for w := range allWants {
		found := false
		for _, f := range Fixtures() {
			found = found || f.Want == w
		}
		if !found {
			t.Errorf("no fixture wants %q", w)
		}
	}
}

// TestFixturesWellFormed checks the frames that should be valid with the
// checkers, and a few of their fields.
func TestFixturesWellFormed(t *testing.T) {
	ip4 := IPv4(ValidChecksums(), TotalLenMatches())
	fixtureCheckers := map[string][]Checker{
		"tcp-syn":           {ip4, TCP(TCPFlagsAre(FlagSYN), Seq(1_000_000), DstPort(80)), EthDst(fixVIP.MAC)},
		"tcp-syn-ack":       {ip4, TCP(TCPFlagsAre(FlagSYN|FlagACK), Ack(1_000_001), SrcPort(80))},
		"tcp-ack-payload":   {ip4, TCP(TCPFlagsAre(FlagPSH | FlagACK)), Payload([]byte("GET / HTTP/1.1\r\nHost: 198.18.1.1\r\n\r\n"))},
		"tcp-fin":           {ip4, TCPFlagsAre(FlagFIN | FlagACK)},
		"tcp-rst":           {ip4, TCPFlagsAre(FlagRST)},
		"udp":               {ip4, UDP(DstPort(8080))},
		"udp-zero-checksum": {IPv4(ValidIPv4Checksum(), TotalLenMatches()), ZeroUDPChecksum()},
		"icmp-echo-request": {ip4, ICMPType(8), EchoID(0x4242)},
		"icmp-frag-needed": {ip4, ICMPType(3), ICMPCode(4), NextHopMTU(1400), Dst(fixVIP.Addr.Addr()),
			Quoted(Src(fixVIP.Addr.Addr()), Dst(fixClient.Addr.Addr()), SrcPort(80), DstPort(40000), DF(true), TotalLenMatches())},
		"arp-request":         {ARP(ARPOp(1), ARPSender(fixRouter.MAC, fixRouter.Addr.Addr()), ARPTarget([6]byte{}, fixVIP.Addr.Addr())), EthDst(BroadcastMAC)},
		"ipv6-tcp":            {IPv6(ValidChecksums(), TotalLenMatches(), TCP(TCPFlagsAre(FlagSYN)))},
		"ipv4-fragment-first": {ip4, UDP(DstPort(80))},
		"ipv4-fragment-last":  {ip4},
		"ipv4-options":        {ip4, TCP(TCPFlagsAre(FlagSYN))},
		"unknown-proto-gre":   {ip4, Proto(47)},
	}
	for _, f := range Fixtures() {
		cs, ok := fixtureCheckers[f.Name]
		if !ok {
			continue
		}
		delete(fixtureCheckers, f.Name)
		t.Run(f.Name, func(t *testing.T) {
			Check(t, f.Frame, cs...)
			p := gopacket.NewPacket(f.Frame, layers.LayerTypeEthernet, gopacket.Default)
			if f.Name != "unknown-proto-gre" && !isFragmentName(f.Name) && p.ErrorLayer() != nil {
				t.Errorf("gopacket: %v", p.ErrorLayer().Error())
			}
		})
	}
	for name := range fixtureCheckers {
		t.Errorf("no fixture named %q", name)
	}
}

func isFragmentName(name string) bool {
	return name == "ipv4-fragment-first" || name == "ipv4-fragment-last"
}

// TestFixturesSingleDefect checks that each broken frame is broken only in
// the way its name says: everything else about it verifies.
func TestFixturesSingleDefect(t *testing.T) {
	byName := map[string][]byte{}
	for _, f := range Fixtures() {
		byName[f.Name] = f.Frame
	}
	headerSumOK := func(t *testing.T, f []byte) {
		t.Helper()
		if Checksum(f[14:34], 0) != 0 {
			t.Error("the first 20 bytes of the IPv4 header do not sum to zero")
		}
	}
	tcpSumOK := func(t *testing.T, f []byte) {
		t.Helper()
		ip := f[14:]
		seg := ip[20:binary.BigEndian.Uint16(ip[2:])]
		if Checksum(seg, pseudoHeaderSum(ip[12:16], ip[16:20], 6, len(seg))) != 0 {
			t.Error("the TCP segment does not sum to zero")
		}
	}
	tests := []struct {
		name  string
		check func(t *testing.T, f []byte)
	}{
		{"truncated-14", func(t *testing.T, f []byte) {
			if len(f) != 14 || !bytes.Equal(f, byName["tcp-syn"][:14]) {
				t.Errorf("not the first 14 bytes of tcp-syn")
			}
		}},
		{"truncated-20", func(t *testing.T, f []byte) {
			if len(f) != 20 {
				t.Errorf("len %d", len(f))
			}
		}},
		{"truncated-33", func(t *testing.T, f []byte) {
			if len(f) != 33 {
				t.Errorf("len %d", len(f))
			}
		}},
		{"truncated-tcp-header", func(t *testing.T, f []byte) {
			headerSumOK(t, f)
			if len(f) != 60 || binary.BigEndian.Uint16(f[16:]) != 30 {
				t.Errorf("len %d total %d, want a padded 60-byte frame of total length 30", len(f), binary.BigEndian.Uint16(f[16:]))
			}
		}},
		{"bad-version", func(t *testing.T, f []byte) { headerSumOK(t, f); tcpSumOK(t, f) }},
		{"bad-ihl", func(t *testing.T, f []byte) {
			headerSumOK(t, f)
			tcpSumOK(t, f)
			if f[14] != 0x44 {
				t.Errorf("first byte %#x, want 0x44", f[14])
			}
		}},
		{"bad-total-length-beyond-frame", func(t *testing.T, f []byte) {
			headerSumOK(t, f)
			if total := int(binary.BigEndian.Uint16(f[16:])); total <= len(f)-14 {
				t.Errorf("total length %d fits the %d-byte frame", total, len(f))
			}
		}},
		{"bad-total-length-below-header", func(t *testing.T, f []byte) { headerSumOK(t, f) }},
		{"bad-ip-checksum", func(t *testing.T, f []byte) {
			r := run(f, ValidIPv4Checksum(), TotalLenMatches(), ValidL4Checksum())
			r.wantErrors(t, "ipv4 checksum")
		}},
		{"unknown-proto-gre", func(t *testing.T, f []byte) { Check(t, f, ValidIPv4Checksum(), TotalLenMatches()) }},
		{"tcp-offset-below-5", func(t *testing.T, f []byte) { headerSumOK(t, f); tcpSumOK(t, f) }},
		{"tcp-offset-beyond-packet", func(t *testing.T, f []byte) { headerSumOK(t, f); tcpSumOK(t, f) }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, ok := byName[tt.name]
			if !ok {
				t.Fatalf("no fixture named %q", tt.name)
			}
			tt.check(t, f)
		})
	}
}

// TestFixtureAddresses checks that only benchmarking addresses appear: every
// IPv4 address in 198.18.0.0/15, every IPv6 one in 2001:2::/48, wherever
// gopacket finds them, in quotes and tunnels too.
func TestFixtureAddresses(t *testing.T) {
	bench4 := netip.MustParsePrefix("198.18.0.0/15")
	bench6 := netip.MustParsePrefix("2001:2::/48")
	check := func(t *testing.T, raw []byte) {
		t.Helper()
		if raw == nil { // a header gopacket could not decode
			return
		}
		a, ok := netip.AddrFromSlice(raw)
		if !ok || !(bench4.Contains(a) || bench6.Contains(a)) {
			t.Errorf("address %v outside the benchmarking ranges", a)
		}
	}
	for _, f := range Fixtures() {
		t.Run(f.Name, func(t *testing.T) {
			if len(f.Frame) >= 14 && binary.BigEndian.Uint16(f.Frame[12:]) == 0x0800 {
				// Raw, for frames too short or broken for gopacket.
				for off := 26; off+4 <= min(len(f.Frame), 34); off += 4 {
					check(t, f.Frame[off:off+4])
				}
			}
			p := gopacket.NewPacket(f.Frame, layers.LayerTypeEthernet, gopacket.Default)
			for _, l := range p.Layers() {
				switch l := l.(type) {
				case *layers.IPv4:
					check(t, l.SrcIP)
					check(t, l.DstIP)
				case *layers.IPv6:
					check(t, l.SrcIP)
					check(t, l.DstIP)
				case *layers.ARP:
					check(t, l.SourceProtAddress)
					check(t, l.DstProtAddress)
				case *layers.ICMPv4:
					if isICMPError(l.TypeCode.Type()) && len(l.Payload) >= 20 {
						check(t, l.Payload[12:16])
						check(t, l.Payload[16:20])
					}
				}
			}
		})
	}
}

func TestFixturesFresh(t *testing.T) {
	a, b := Fixtures(), Fixtures()
	for i := range a {
		if !bytes.Equal(a[i].Frame, b[i].Frame) || a[i].Name != b[i].Name {
			t.Fatalf("fixture %d differs between calls", i)
		}
		for j := range a[i].Frame {
			a[i].Frame[j] ^= 0xff
		}
	}
	for i, f := range Fixtures() {
		if !bytes.Equal(f.Frame, b[i].Frame) {
			t.Errorf("%s: modifying a returned frame changed later ones", f.Name)
		}
	}
}
