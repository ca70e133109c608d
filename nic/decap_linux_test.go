//go:build linux

package nic

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"github.com/culvert-lb/culvert/internal/packettest"
	"github.com/culvert-lb/culvert/internal/testenv"
)

// Addresses of the decapsulation tests: the load balancer sends from lb to
// the backend's own address; the inner packet goes from a client to a VIP
// the backend serves.
var (
	decapLB      = packettest.Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 0x0b}, Addr: netip.MustParseAddrPort("198.18.0.2:0")}
	decapBackend = packettest.Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 0x14}, Addr: netip.MustParseAddrPort("198.18.0.1:0")}
	decapClient  = packettest.Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 0x0a}, Addr: netip.MustParseAddrPort("198.18.0.10:40000")}
	decapVIP     = packettest.Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 0x01}, Addr: netip.MustParseAddrPort("198.18.5.5:9000")}
	decapOther   = packettest.Endpoint{MAC: decapBackend.MAC, Addr: netip.MustParseAddrPort("198.18.0.3:0")}
)

func decapLoaded(t testing.TB) *Decap {
	t.Helper()
	testenv.RequireRoot(t)
	d, err := loadDecap("test", [][4]byte{decapBackend.Addr.Addr().As4(), netip.MustParseAddr("198.18.0.4").As4()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d
}

// decapWithOuterOptions returns frame, an IPIP frame, with n bytes of NOP
// options (n a multiple of 4) added to its outer header.
func decapWithOuterOptions(frame []byte, n int) []byte {
	f := append([]byte(nil), frame[:14+20]...)
	f = append(f, bytes.Repeat([]byte{1}, n)...)
	f = append(f, frame[14+20:]...)
	ip := f[14:]
	ip[0] = 0x40 | byte((20+n)/4)
	binary.BigEndian.PutUint16(ip[2:], binary.BigEndian.Uint16(ip[2:])+uint16(n))
	return steerFix(f)
}

func TestDecapProgram(t *testing.T) {
	d := decapLoaded(t)
	innerUDP := packettest.UDP4(decapClient, decapVIP, []byte("inner datagram"), packettest.WithID(9))
	innerTCP := packettest.TCP4(decapClient, decapVIP, packettest.FlagSYN, nil, packettest.WithIPOptions([]byte{0x94, 4, 0, 0}))
	innerBig := packettest.TCP4(decapClient, decapVIP, packettest.FlagACK, nil, packettest.WithPayloadLen(1400))
	ipip := func(dst packettest.Endpoint, inner []byte, opts ...packettest.Option) []byte {
		return packettest.Encap4(decapLB, dst, packettest.IPPacket(inner), opts...)
	}
	udpIPIP := ipip(decapBackend, innerUDP)
	inner6 := packettest.TCP6(packettest.Endpoint{MAC: decapClient.MAC, Addr: netip.MustParseAddrPort("[2001:2::a]:40000")},
		packettest.Endpoint{MAC: decapVIP.MAC, Addr: netip.MustParseAddrPort("[2001:2::5]:80")}, packettest.FlagSYN, nil)
	mf := append([]byte(nil), udpIPIP...)
	mf[14+6] |= 0x20 // more fragments
	steerFix(mf)
	notIP := append([]byte(nil), udpIPIP...)
	notIP[14+20] = 0x65 // inner version 6 under protocol 4

	tests := []struct {
		name  string
		frame []byte
		inner []byte // the inner frame expected out, nil if the frame must pass unchanged
	}{
		{"udp", udpIPIP, innerUDP},
		{"tcp-with-inner-options", ipip(decapBackend, innerTCP), innerTCP},
		{"full-sized", ipip(decapBackend, innerBig, packettest.WithDF()), innerBig},
		{"second-address", ipip(packettest.Endpoint{MAC: decapBackend.MAC, Addr: netip.MustParseAddrPort("198.18.0.4:0")}, innerUDP), innerUDP},
		{"outer-options-4", decapWithOuterOptions(udpIPIP, 4), innerUDP},
		{"outer-options-40", decapWithOuterOptions(udpIPIP, 40), innerUDP},

		{"to-another-address", ipip(decapOther, innerUDP), nil},
		{"ipv6-inside-proto-41", ipip(decapBackend, inner6), nil},
		{"outer-fragment", mf, nil},
		{"inner-not-ipv4", notIP, nil},
		{"inner-cut", append([]byte(nil), udpIPIP[:14+20+19]...), nil},
		{"outer-cut", append([]byte(nil), udpIPIP[:14+19]...), nil},
		{"outer-options-inner-cut", decapWithOuterOptions(udpIPIP, 40)[:14+60+19], nil},
		{"plain-udp-to-backend", packettest.UDP4(decapClient, packettest.Endpoint{MAC: decapBackend.MAC, Addr: netip.MustParseAddrPort("198.18.0.1:53")}, []byte("x")), nil},
		{"arp", packettest.ARPRequest(decapLB.MAC, decapLB.Addr.Addr(), decapBackend.Addr.Addr()), nil},
		{"ipv6", inner6, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := d.Stats()
			if err != nil {
				t.Fatal(err)
			}
			ret, out := progRun(t, d.prog, tt.frame)
			after, err := d.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if ret != xdpPass {
				t.Errorf("action %d, want XDP_PASS", ret)
			}
			want, wantStats := tt.frame, before
			if tt.inner == nil {
				wantStats.Passed++
			} else {
				wantStats.Decapsulated++
				// The outer Ethernet header, then the inner packet and
				// whatever padding followed it.
				ihl := int(tt.frame[14]&0x0f) * 4
				want = append(append([]byte(nil), tt.frame[:14]...), tt.frame[14+ihl:]...)
				if !bytes.HasPrefix(want[14:], packettest.IPPacket(tt.inner)) {
					t.Fatal("test case broken: the frame does not carry the inner packet after its outer header")
				}
			}
			if !bytes.Equal(out, want) {
				t.Errorf("frame out\n got % x\nwant % x", out, want)
			} else if tt.inner != nil {
				packettest.Check(t, out,
					packettest.EthSrc(decapLB.MAC), packettest.EthDst(decapBackend.MAC), packettest.EtherType(0x0800),
					packettest.IPv4(packettest.Src(decapClient.Addr.Addr()), packettest.Dst(decapVIP.Addr.Addr()), packettest.ValidChecksums()))
			}
			if after != wantStats {
				t.Errorf("counters %+v, want %+v", after, wantStats)
			}
		})
	}
}

func TestDecapUpdate(t *testing.T) {
	d := decapLoaded(t)
	frame := packettest.Encap4(decapLB, decapOther, packettest.IPPacket(packettest.UDP4(decapClient, decapVIP, []byte("x"))))
	run := func() DecapStats {
		t.Helper()
		before, _ := d.Stats()
		progRun(t, d.prog, frame)
		after, err := d.Stats()
		if err != nil {
			t.Fatal(err)
		}
		return DecapStats{after.Decapsulated - before.Decapsulated, after.Passed - before.Passed}
	}
	if got := run(); got != (DecapStats{Passed: 1}) {
		t.Fatalf("before Update: %+v, want one passed", got)
	}
	if err := d.Update([][4]byte{decapOther.Addr.Addr().As4()}); err != nil {
		t.Fatal(err)
	}
	if got := run(); got != (DecapStats{Decapsulated: 1}) {
		t.Errorf("after Update: %+v, want one decapsulated", got)
	}
	if keys := steerKeys(t, d.addrs); len(keys) != 1 {
		t.Errorf("%d addresses in the map after Update, want 1", len(keys))
	}
	if err := d.Update(nil); err == nil {
		t.Error("Update(nil) accepted")
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := d.Stats(); err == nil {
		t.Error("Stats after Close succeeded")
	}
}
