package pktgen

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/culvert-lb/culvert/internal/header"
	"github.com/culvert-lb/culvert/internal/packettest"
)

func TestMatchValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		m    Match
		want string
	}{
		{"udp", Match{Proto: header.ProtoUDP, DstPort: 7}, ""},
		{"tcp, all set", Match{Proto: header.ProtoTCP, DstPort: 80, Dst: testDst.Addr(), Src: netip.MustParsePrefix("198.18.2.0/24"), DstMAC: testDstMAC}, ""},
		{"icmp", Match{Proto: header.ProtoICMP, DstPort: 7}, "protocol 1"},
		{"port 0", Match{Proto: header.ProtoUDP}, "port 0"},
		{"dst ipv6", Match{Proto: header.ProtoUDP, DstPort: 7, Dst: netip.MustParseAddr("2001:2::1")}, "dst 2001:2::1"},
		{"src ipv6", Match{Proto: header.ProtoUDP, DstPort: 7, Src: netip.MustParsePrefix("2001:2::/48")}, "src 2001:2::/48"},
		{"zero", Match{}, "protocol 0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.m.Validate()
			if tc.want == "" && err != nil || tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)) {
				t.Errorf("%v, want %q", err, tc.want)
			}
		})
	}
}

// TestMatchFrame: the Go reference of the programs (which TestProgVerdicts
// holds the programs to, as root) selects what Match documents.
func TestMatchFrame(t *testing.T) {
	tp := mustTemplate(t, testSpec(UDP, 64, 1))
	own := tp.Match()
	if own != (Match{Proto: header.ProtoUDP, DstPort: 7, Dst: testDst.Addr()}) {
		t.Fatalf("template match %+v", own)
	}
	ep := func(mac [6]byte, a string) packettest.Endpoint {
		return packettest.Endpoint{MAC: mac, Addr: netip.MustParseAddrPort(a)}
	}
	from, to := ep(testSrcMAC, "198.19.0.2:1"), ep(testDstMAC, "198.18.1.1:7")
	other := [6]byte{0x02, 0, 0, 0, 0, 0x09}
	withMAC := own
	withMAC.DstMAC = testDstMAC
	fromSNAT := own
	fromSNAT.Src = netip.MustParsePrefix("198.18.2.0/24")
	for _, tc := range []struct {
		name  string
		m     Match
		frame []byte
		want  verdict
	}{
		{"ours", own, tp.Frame(), verdictTake},
		{"another port", own, packettest.UDP4(from, ep(testDstMAC, "198.18.1.1:8"), nil), verdictPass},
		{"another address", own, packettest.UDP4(from, ep(testDstMAC, "198.18.1.2:7"), nil), verdictPass},
		{"tcp", own, packettest.TCP4(from, to, packettest.FlagSYN, nil), verdictPass},
		{"ip options", own, packettest.UDP4(from, to, nil, packettest.WithIPOptions([]byte{1, 1, 1, 0})), verdictPass},
		{"fragment", own, packettest.Fragment4(packettest.UDP4(from, to, make([]byte, 32)), 16)[1], verdictPass},
		{"short", own, tp.Frame()[:progPortsEnd-1], verdictPass},
		{"to our MAC", withMAC, tp.Frame(), verdictTake},
		{"flooded", withMAC, packettest.UDP4(from, ep(other, "198.18.1.1:7"), nil), verdictFlooded},
		{"from outside the source prefix", fromSNAT, tp.Frame(), verdictPass},
		{"from inside it", fromSNAT, packettest.UDP4(ep(testSrcMAC, "198.18.2.9:1"), to, nil), verdictTake},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := matchFrame(tc.m, tc.frame); got != tc.want {
				t.Errorf("verdict %d, want %d", got, tc.want)
			}
		})
	}
}

func TestCountsMergeSub(t *testing.T) {
	a := Counts{Packets: 10, Bytes: 600, Flooded: 1, NoSocket: 2}
	b := Counts{Packets: 5, Bytes: 300, Flooded: 0, NoSocket: 1}
	a.Merge(b)
	if a != (Counts{Packets: 15, Bytes: 900, Flooded: 1, NoSocket: 3}) {
		t.Errorf("merged %+v", a)
	}
	if d := a.Sub(b); d != (Counts{Packets: 10, Bytes: 600, Flooded: 1, NoSocket: 2}) {
		t.Errorf("difference %+v", d)
	}
}
