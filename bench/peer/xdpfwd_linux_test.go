package peer

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"

	"github.com/culvert-lb/culvert/internal/packettest"
	"github.com/culvert-lb/culvert/internal/testenv"
)

var (
	tClientMAC = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	tSelfMAC   = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	tOtherMAC  = [6]byte{0x02, 0, 0, 0, 0, 0x03}
	tB0MAC     = [6]byte{0x02, 0, 0, 0, 0, 0x11}
	tB1MAC     = [6]byte{0x02, 0, 0, 0, 0, 0x12}
	tB2MAC     = [6]byte{0xfe, 0xdc, 0xba, 0x98, 0x76, 0x13}
	tClient    = netip.MustParseAddr("198.19.0.2")
	tVIP       = netip.MustParseAddr("198.18.1.1")
	tOtherVIP  = netip.MustParseAddr("198.18.1.2")
	tBackend   = netip.MustParseAddr("198.18.0.11")
)

// loadTestForwarder loads the forwarder's program with its own counters.
func loadTestForwarder(t *testing.T, backends [][6]byte, redirect int) (*ebpf.Program, *ebpf.Map) {
	t.Helper()
	stats, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: fwdSlots})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { stats.Close() })
	p := xdpfwdProgram{statsFD: stats.FD(), vip: tVIP.As4(), backends: backends, self: tSelfMAC, redirect: redirect}
	prog, err := loadXDP("xdpfwd_test", p.instructions)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { prog.Close() })
	return prog, stats
}

// TestXDPForwarderProgram: frames to the VIP leave toward the backend that
// their source port picks, with the forwarder's MAC as source and nothing
// else changed; everything else passes untouched; the counters add up.
func TestXDPForwarderProgram(t *testing.T) {
	testenv.RequireRoot(t)
	backends := [][6]byte{tB0MAC, tB1MAC, tB2MAC}
	const xdpRedirect = 4
	udp := func(sport uint16, dst netip.Addr, opts ...packettest.Option) []byte {
		return packettest.UDP4(
			packettest.Endpoint{MAC: tClientMAC, Addr: netip.AddrPortFrom(tClient, sport)},
			packettest.Endpoint{MAC: tSelfMAC, Addr: netip.AddrPortFrom(dst, 7)}, []byte("hello"), opts...)
	}
	tcp := func(sport uint16) []byte {
		return packettest.TCP4(
			packettest.Endpoint{MAC: tClientMAC, Addr: netip.AddrPortFrom(tClient, sport)},
			packettest.Endpoint{MAC: tSelfMAC, Addr: netip.AddrPortFrom(tVIP, 80)}, packettest.FlagSYN, nil)
	}
	icmp := packettest.ICMP4Echo(packettest.Endpoint{MAC: tClientMAC, Addr: netip.AddrPortFrom(tClient, 0)},
		packettest.Endpoint{MAC: tSelfMAC, Addr: netip.AddrPortFrom(tVIP, 0)}, 1, 1, nil)
	for _, redirect := range []int{0, 7} {
		name, fwdVerdict := "xdp_tx", uint32(xdpTX)
		if redirect != 0 {
			name, fwdVerdict = "redirect", xdpRedirect
		}
		t.Run(name, func(t *testing.T) {
			prog, stats := loadTestForwarder(t, backends, redirect)
			var wantFwd, wantPass uint64
			for _, tc := range []struct {
				name  string
				frame []byte
				to    [6]byte // zero: passed unchanged
			}{
				{"udp, port 30000 mod 3 = 0", udp(30000, tVIP), tB0MAC},
				{"udp, port 30001 mod 3 = 1", udp(30001, tVIP), tB1MAC},
				{"udp, port 30002 mod 3 = 2", udp(30002, tVIP), tB2MAC},
				{"udp, port 65535 mod 3 = 0", udp(65535, tVIP), tB0MAC},
				{"tcp, port 1000 mod 3 = 1", tcp(1000), tB1MAC},
				{"ip options: backend 0", udp(30001, tVIP, packettest.WithIPOptions([]byte{1, 1, 1, 0})), tB0MAC},
				{"icmp: backend 0", icmp, tB0MAC},
				{"another VIP", udp(30001, tOtherVIP), [6]byte{}},
				{"to a backend", udp(30001, tBackend), [6]byte{}},
				{"arp", packettest.ARPRequest(tClientMAC, tClient, tVIP), [6]byte{}},
				{"cut short in the IP header", udp(30001, tVIP)[:14+19], [6]byte{}},
			} {
				t.Run(tc.name, func(t *testing.T) {
					out := make([]byte, len(tc.frame)+256)
					ret, err := prog.Run(&ebpf.RunOptions{Data: tc.frame, DataOut: out})
					if err != nil {
						t.Fatal(err)
					}
					out = out[:len(tc.frame)]
					if tc.to == ([6]byte{}) {
						wantPass++
						if ret != xdpPass || !slices.Equal(out, tc.frame) {
							t.Errorf("verdict %d, frame changed %v; want pass, unchanged", ret, !slices.Equal(out, tc.frame))
						}
						return
					}
					wantFwd++
					if ret != fwdVerdict {
						t.Errorf("verdict %d, want %d", ret, fwdVerdict)
					}
					if [6]byte(out[0:6]) != tc.to || [6]byte(out[6:12]) != tSelfMAC {
						t.Errorf("MACs %x -> %x, want %x -> %x", out[6:12], out[0:6], tSelfMAC, tc.to)
					}
					if !slices.Equal(out[12:], tc.frame[12:]) {
						t.Errorf("bytes after the MACs changed")
					}
				})
			}
			fwd, err1 := sumPerCPU(stats, fwdSlotForwarded)
			pass, err2 := sumPerCPU(stats, fwdSlotPassed)
			if err1 != nil || err2 != nil || fwd != wantFwd || pass != wantPass {
				t.Errorf("counted %d forwarded, %d passed (%v, %v); want %d, %d", fwd, pass, err1, err2, wantFwd, wantPass)
			}
		})
	}
}

// TestXDPForwarderOneBackend: a single MAC takes everything to the VIP.
func TestXDPForwarderOneBackend(t *testing.T) {
	testenv.RequireRoot(t)
	prog, _ := loadTestForwarder(t, [][6]byte{tOtherMAC}, 0)
	for _, port := range []uint16{1, 2, 40000} {
		f := packettest.UDP4(packettest.Endpoint{MAC: tClientMAC, Addr: netip.AddrPortFrom(tClient, port)},
			packettest.Endpoint{MAC: tSelfMAC, Addr: netip.AddrPortFrom(tVIP, 7)}, nil)
		out := make([]byte, len(f)+256)
		ret, err := prog.Run(&ebpf.RunOptions{Data: f, DataOut: out})
		if err != nil || ret != xdpTX || [6]byte(out[0:6]) != tOtherMAC {
			t.Errorf("port %d: verdict %d (%v), dst %x", port, ret, err, out[0:6])
		}
	}
}

// TestXDPForwarderNoBackends: the program refuses to build without MACs.
func TestXDPForwarderNoBackends(t *testing.T) {
	if _, err := (xdpfwdProgram{vip: tVIP.As4()}).instructions(); err == nil {
		t.Fatal("built a forwarder with no backend")
	}
	var _ asm.Instructions = xdpPassInstructions()
}
