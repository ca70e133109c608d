//go:build linux

package nic

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/culvert-lb/culvert/internal/packettest"
	"github.com/culvert-lb/culvert/internal/testenv"
	"golang.org/x/sys/unix"
)

// The steering program runs here in the kernel with BPF_PROG_TEST_RUN, on
// no interface. Each frame runs twice: with no socket for queue 0, where
// the program must return XDP_PASS and count the frame as passed or
// redirect-failed, and with an AF_XDP socket in the XSKMAP, where it must
// return XDP_REDIRECT for what it claims (test runs do not deliver the
// frame, so the socket need not be bound).

// Addresses of the steering tests, all in 198.18.0.0/15.
var (
	steerHost    = packettest.Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 1}, Addr: netip.MustParseAddrPort("198.18.0.1:22")}
	steerClient  = packettest.Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 0x0a}, Addr: netip.MustParseAddrPort("198.18.0.10:40000")}
	steerRouter  = packettest.Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 0xfe}, Addr: netip.MustParseAddrPort("198.18.0.254:0")}
	steerBackend = packettest.Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 0x14}, Addr: netip.MustParseAddrPort("198.19.0.20:8080")}
	steerVIP     = netip.MustParseAddr("198.18.1.1") // the fixtures' VIP, services tcp/80, udp/80, udp/53
	steerVIP2    = netip.MustParseAddr("198.18.1.2") // a VIP with no service
	steerLocal   = netip.MustParseAddr("198.18.2.1") // a NAT local address
	steerOther   = netip.MustParseAddr("198.19.9.9") // nobody the dataplane knows
	steerVIPs    = [][4]byte{steerVIP.As4(), steerVIP2.As4()}
	steerLocals  = [][4]byte{steerLocal.As4()}
	steerSvcs    = []SteerService{
		{steerVIP.As4(), 80, 6},
		{steerVIP.As4(), 80, 17},
		{steerVIP.As4(), 53, 17},
	}
)

func steerTo(a netip.Addr, port uint16) packettest.Endpoint {
	return packettest.Endpoint{MAC: steerHost.MAC, Addr: netip.AddrPortFrom(a, port)}
}

// steerLoaded loads the steering program, not attached, with the test
// configuration.
func steerLoaded(t testing.TB, queues int) *Steering {
	t.Helper()
	testenv.RequireRoot(t)
	s, err := loadSteering("test", queues)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	if err := s.Update(steerVIPs, steerSvcs, steerLocals); err != nil {
		t.Fatal(err)
	}
	return s
}

// progXSK returns an AF_XDP socket, closed by the test's cleanup. It is not
// bound: an XSKMAP takes it, and test runs never deliver to it.
func progXSK(t testing.TB) int {
	t.Helper()
	fd, err := unix.Socket(unix.AF_XDP, unix.SOCK_RAW|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("AF_XDP socket: %v", err)
	}
	t.Cleanup(func() { unix.Close(fd) })
	return fd
}

// progRun runs prog once on frame and returns its action and the frame as
// the program left it.
func progRun(t testing.TB, prog *ebpf.Program, frame []byte) (uint32, []byte) {
	t.Helper()
	out := make([]byte, len(frame)+256)
	opts := ebpf.RunOptions{Data: frame, DataOut: out}
	ret, err := prog.Run(&opts)
	if err != nil {
		t.Fatalf("run: %v", err)
	}
	return ret, opts.DataOut
}

// steerCheck runs frame through s without and with a socket on queue 0
// and checks the action and the counters against want (redirect or not).
func steerCheck(t *testing.T, s *Steering, xsk int, frame []byte, redirect bool) {
	t.Helper()
	for _, withSocket := range []bool{false, true} {
		fd := -1
		if withSocket {
			fd = xsk
		}
		if err := s.SetSocket(0, fd); err != nil {
			t.Fatal(err)
		}
		before, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		ret, out := progRun(t, s.prog, frame)
		after, err := s.Stats()
		if err != nil {
			t.Fatal(err)
		}
		want, wantStats := uint32(xdpPass), before
		switch {
		case !redirect:
			wantStats.Passed++
		case withSocket:
			want = xdpRedirect
			wantStats.Redirected++
		default:
			wantStats.RedirectFailed++
		}
		if ret != want || after != wantStats {
			t.Errorf("socket=%v: action %d, counters %+v; want action %d, counters %+v", withSocket, ret, after, want, wantStats)
		}
		if !bytes.Equal(out, frame) {
			t.Errorf("socket=%v: the program changed the frame:\n got % x\nwant % x", withSocket, out, frame)
		}
	}
}

// steerFix rewrites the IPv4 header checksum of frame (no VLAN tag) after
// a test changed the header.
func steerFix(frame []byte) []byte {
	ip := frame[14:]
	ihl := int(ip[0]&0x0f) * 4
	ip[10], ip[11] = 0, 0
	binary.BigEndian.PutUint16(ip[10:], packettest.Checksum(ip[:ihl], 0))
	return frame
}

func TestSteerClassifies(t *testing.T) {
	s := steerLoaded(t, 1)
	xsk := progXSK(t)

	c, h := steerClient, steerHost
	vip80, vip53, vip81 := steerTo(steerVIP, 80), steerTo(steerVIP, 53), steerTo(steerVIP, 81)
	local := steerTo(steerLocal, 61000)
	payload := []byte("culvert")
	tcpVIP := packettest.TCP4(c, vip80, packettest.FlagSYN, nil)
	bigUDP := func(dst packettest.Endpoint) [][]byte {
		return packettest.Fragment4(packettest.UDP4(c, dst, nil, packettest.WithPayloadLen(1200)), 1024)
	}
	vlan := func(frame []byte) []byte {
		out := append([]byte(nil), frame[:12]...)
		out = append(out, 0x81, 0x00, 0x00, 0x07)
		return append(out, frame[12:]...)
	}
	cut := func(frame []byte, n int) []byte { return append([]byte(nil), frame[:n]...) }
	withIHL := func(frame []byte, ihl byte) []byte {
		f := append([]byte(nil), frame...)
		f[14] = 0x40 | ihl // the checksum goes stale: the program does not check it
		return f
	}
	arpVIP := packettest.ARPRequest(steerRouter.MAC, steerRouter.Addr.Addr(), steerVIP)
	reply := packettest.TCP4(vip80, c, packettest.FlagSYN|packettest.FlagACK, nil, packettest.WithDF())

	tests := []struct {
		name     string
		frame    []byte
		redirect bool
	}{
		{"tcp-to-service", tcpVIP, true},
		{"tcp-to-vip-other-port", packettest.TCP4(c, vip81, packettest.FlagSYN, nil), false},
		{"tcp-to-udp-only-service", packettest.TCP4(c, vip53, packettest.FlagSYN, nil), false},
		{"udp-to-service", packettest.UDP4(c, vip53, payload), true},
		{"udp-to-vip-other-port", packettest.UDP4(c, vip81, payload), false},
		{"tcp-to-vip-without-services", packettest.TCP4(c, steerTo(steerVIP2, 80), packettest.FlagSYN, nil), false},
		{"tcp-to-host-ssh", packettest.TCP4(c, h, packettest.FlagSYN, nil), false},
		{"tcp-port-80-of-other-host", packettest.TCP4(c, steerTo(steerOther, 80), packettest.FlagSYN, nil), false},
		{"tcp-with-ip-options-to-service", packettest.TCP4(c, vip80, packettest.FlagSYN, nil, packettest.WithIPOptions([]byte{0x94, 4, 0, 0})), true},
		{"tcp-with-ip-options-other-port", packettest.TCP4(c, vip81, packettest.FlagSYN, nil, packettest.WithIPOptions([]byte{0x94, 4, 0, 0})), false},
		{"tcp-with-40-bytes-of-options", packettest.TCP4(c, vip80, packettest.FlagSYN, nil, packettest.WithIPOptions(bytes.Repeat([]byte{1}, 40))), true},

		// Replies to NAT flows: every port and protocol of a local address.
		{"tcp-reply-to-local", packettest.TCP4(steerBackend, local, packettest.FlagSYN|packettest.FlagACK, nil), true},
		{"udp-reply-to-local", packettest.UDP4(steerBackend, local, payload), true},
		{"gre-to-local", steerRawIPv4(c, local, 47, []byte{0, 0, 0x08, 0}), true},
		{"gre-to-vip", steerRawIPv4(c, vip80, 47, []byte{0, 0, 0x08, 0}), false},

		{"icmp-echo-to-vip", packettest.ICMP4Echo(c, vip80, 1, 1, payload), true},
		{"icmp-echo-to-vip-without-services", packettest.ICMP4Echo(c, steerTo(steerVIP2, 0), 1, 1, payload), true},
		{"icmp-echo-to-local", packettest.ICMP4Echo(c, local, 1, 1, payload), true},
		{"icmp-echo-to-host", packettest.ICMP4Echo(c, h, 1, 1, payload), false},
		{"icmp-error-to-vip", packettest.ICMP4Error(steerRouter, vip80, 3, 4, 1400, packettest.Quote(reply, 8)), true},
		{"icmp-error-to-local", packettest.ICMP4Error(steerRouter, local, 11, 0, 0, packettest.Quote(packettest.TCP4(local, steerBackend, packettest.FlagSYN, nil), 8)), true},
		{"icmp-error-to-host", packettest.ICMP4Error(steerRouter, h, 3, 3, 0, packettest.Quote(packettest.UDP4(h, c, payload), 8)), false},

		{"arp-request-for-vip", arpVIP, true},
		{"arp-request-for-vip-without-services", packettest.ARPRequest(steerRouter.MAC, steerRouter.Addr.Addr(), steerVIP2), true},
		{"arp-request-for-host", packettest.ARPRequest(steerRouter.MAC, steerRouter.Addr.Addr(), h.Addr.Addr()), false},
		{"arp-request-for-local", packettest.ARPRequest(steerRouter.MAC, steerRouter.Addr.Addr(), steerLocal), true},
		{"arp-reply-to-vip", packettest.ARPReply(steerRouter.MAC, steerRouter.Addr.Addr(), h.MAC, steerVIP), false},
		{"arp-request-for-vip-hlen-8", steerMutate(arpVIP, 18, 8), false},
		{"arp-request-for-vip-ptype-ipv6", steerMutate(arpVIP, 16, 0x86), false},
		{"arp-request-for-vip-cut", cut(arpVIP, 14+27), false},

		{"ipv6-tcp", packettest.TCP6(packettest.Endpoint{MAC: c.MAC, Addr: netip.MustParseAddrPort("[2001:2::a]:40000")},
			packettest.Endpoint{MAC: h.MAC, Addr: netip.MustParseAddrPort("[2001:2::101]:80")}, packettest.FlagSYN, nil), false},
		{"vlan-tagged-tcp-to-service", vlan(tcpVIP), false},

		// Fragments: the first carries the ports; the others go to the
		// dataplane when they are for a VIP.
		{"first-fragment-to-service", bigUDP(vip53)[0], true},
		{"first-fragment-to-vip-other-port", bigUDP(vip81)[0], false},
		{"next-fragment-to-vip", bigUDP(vip81)[1], true},
		{"next-fragment-to-local", bigUDP(local)[1], true},
		{"next-fragment-to-other-host", bigUDP(steerTo(steerOther, 80))[1], false},

		// Cut short or broken.
		{"ethernet-only", cut(tcpVIP, 14), false},
		{"ipv4-header-cut", cut(tcpVIP, 14+19), false},
		{"ports-cut-to-vip", cut(tcpVIP, 14+20+3), true},
		{"ports-cut-to-other-host", cut(packettest.TCP4(c, steerTo(steerOther, 80), packettest.FlagSYN, nil), 14+20+3), false},
		{"ihl-15-beyond-frame-to-vip", withIHL(cut(tcpVIP, 14+40), 15), true},
		{"ihl-4-to-vip", withIHL(tcpVIP, 4), false},
		{"version-6-in-ipv4-ethertype", steerMutate(tcpVIP, 14, 0x65), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			steerCheck(t, s, xsk, tt.frame, tt.redirect)
		})
	}
}

// steerMutate returns a copy of frame with byte i set to v.
func steerMutate(frame []byte, i int, v byte) []byte {
	f := append([]byte(nil), frame...)
	f[i] = v
	return f
}

// steerRawIPv4 returns an Ethernet frame carrying an IPv4 packet of the
// given protocol and payload from src to dst.
func steerRawIPv4(src, dst packettest.Endpoint, proto uint8, payload []byte) []byte {
	f := make([]byte, 14+20+len(payload))
	copy(f[0:6], dst.MAC[:])
	copy(f[6:12], src.MAC[:])
	binary.BigEndian.PutUint16(f[12:], 0x0800)
	ip := f[14:]
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(20+len(payload)))
	ip[8], ip[9] = 64, proto
	s, d := src.Addr.Addr().As4(), dst.Addr.Addr().As4()
	copy(ip[12:16], s[:])
	copy(ip[16:20], d[:])
	copy(ip[20:], payload)
	return steerFix(f)
}

// TestSteerFixtures runs the shared golden fixtures (client 198.18.0.10,
// VIP 198.18.1.1:80, backend 198.19.0.20). Every fixture must have an
// expectation here, so a new fixture is not silently skipped.
func TestSteerFixtures(t *testing.T) {
	s := steerLoaded(t, 1)
	xsk := progXSK(t)
	want := map[string]bool{
		"tcp-syn":                       true,
		"tcp-syn-ack":                   false, // from the VIP to the client
		"tcp-ack-payload":               true,
		"tcp-fin":                       true,
		"tcp-rst":                       false, // from the VIP to the client
		"udp":                           false, // client to a backend
		"udp-zero-checksum":             false,
		"icmp-echo-request":             true,
		"icmp-frag-needed":              true,
		"arp-request":                   true,
		"ipv6-tcp":                      false,
		"ipv4-fragment-first":           true, // udp/80 is a service
		"ipv4-fragment-last":            true,
		"ipv4-options":                  true,
		"truncated-14":                  false,
		"truncated-20":                  false,
		"truncated-33":                  false,
		"truncated-tcp-header":          true,
		"bad-version":                   false,
		"bad-ihl":                       false,
		"bad-total-length-beyond-frame": false, // client to a backend
		"bad-total-length-below-header": false,
		"bad-ip-checksum":               false,
		"unknown-proto-gre":             false, // GRE to a VIP: no service
		"tcp-offset-below-5":            true,  // the dataplane drops it
		"tcp-offset-beyond-packet":      true,
	}
	seen := map[string]bool{}
	for _, fx := range packettest.Fixtures() {
		seen[fx.Name] = true
		redirect, ok := want[fx.Name]
		if !ok {
			t.Errorf("fixture %q (%s) has no expectation here", fx.Name, fx.Want)
			continue
		}
		t.Run(fx.Name, func(t *testing.T) {
			if len(fx.Frame) < 14 {
				t.Skip("test runs need an Ethernet header")
			}
			steerCheck(t, s, xsk, fx.Frame, redirect)
		})
	}
	for name := range want {
		if !seen[name] {
			t.Errorf("expectation for %q, which is no fixture", name)
		}
	}
}

// steerKeys returns the keys of an address map or the services map.
func steerKeys(t *testing.T, m *ebpf.Map) []string {
	t.Helper()
	var keys []string
	var k []byte
	var v uint8
	it := m.Iterate()
	for it.Next(&k, &v) {
		keys = append(keys, string(k))
	}
	if err := it.Err(); err != nil {
		t.Fatal(err)
	}
	return keys
}

func TestSteerUpdate(t *testing.T) {
	s := steerLoaded(t, 2)
	a := func(s string) [4]byte { return netip.MustParseAddr(s).As4() }

	check := func(t *testing.T, vips []string, svcs []SteerService, locals []string) {
		t.Helper()
		wantSet := func(addrs []string) map[string]bool {
			m := map[string]bool{}
			for _, x := range addrs {
				k := a(x)
				m[string(k[:])] = true
			}
			return m
		}
		svcSet := map[string]bool{}
		for _, sv := range svcs {
			k := makeSteerServiceKey(sv)
			svcSet[string(k[:])] = true
		}
		for _, c := range []struct {
			name string
			m    *ebpf.Map
			want map[string]bool
		}{{"vips", s.vips, wantSet(vips)}, {"locals", s.locals, wantSet(locals)}, {"services", s.services, svcSet}} {
			got := steerKeys(t, c.m)
			if len(got) != len(c.want) {
				t.Errorf("%s: %d keys, want %d", c.name, len(got), len(c.want))
			}
			for _, k := range got {
				if !c.want[k] {
					t.Errorf("%s: stale key % x", c.name, k)
				}
			}
		}
	}

	check(t, []string{"198.18.1.1", "198.18.1.2"}, steerSvcs, []string{"198.18.2.1"})

	// Replace: one VIP stays, one goes, one comes; the same for services.
	svcs2 := []SteerService{{a("198.18.1.1"), 80, 6}, {a("198.18.1.3"), 443, 6}, {a("198.18.1.3"), 443, 6}}
	if err := s.Update([][4]byte{a("198.18.1.1"), a("198.18.1.3")}, svcs2, [][4]byte{a("198.18.2.2"), a("198.18.2.3")}); err != nil {
		t.Fatal(err)
	}
	check(t, []string{"198.18.1.1", "198.18.1.3"}, svcs2[:2], []string{"198.18.2.2", "198.18.2.3"})
	xsk := progXSK(t)
	t.Run("removed-service-passes", func(t *testing.T) {
		steerCheck(t, s, xsk, packettest.UDP4(steerClient, steerTo(steerVIP, 53), nil), false)
	})
	t.Run("new-service-redirects", func(t *testing.T) {
		steerCheck(t, s, xsk, packettest.TCP4(steerClient, steerTo(netip.MustParseAddr("198.18.1.3"), 443), packettest.FlagSYN, nil), true)
	})
	t.Run("removed-local-passes", func(t *testing.T) {
		steerCheck(t, s, xsk, packettest.UDP4(steerBackend, steerTo(steerLocal, 1000), nil), false)
	})

	// Empty: everything goes to the kernel.
	if err := s.Update(nil, nil, nil); err != nil {
		t.Fatal(err)
	}
	check(t, nil, nil, nil)

	t.Run("invalid", func(t *testing.T) {
		tests := []struct {
			name    string
			vips    [][4]byte
			svcs    []SteerService
			locals  [][4]byte
			wantErr []string
		}{
			{"icmp-service", nil, []SteerService{{a("198.18.1.1"), 80, 1}}, nil, []string{"services[0]: 198.18.1.1:80/proto-1: protocol is not TCP or UDP"}},
			{"port-0", nil, []SteerService{{a("198.18.1.1"), 80, 6}, {a("198.18.1.1"), 0, 17}}, nil, []string{"services[1]: 198.18.1.1:0/udp: port 0"}},
			{"too-many", make([][4]byte, SteerMaxVIPs+1), []SteerService{{a("198.18.1.1"), 0, 1}}, make([][4]byte, SteerMaxLocals+1),
				[]string{"vips: 4097 addresses", "locals: 4097 addresses", "protocol is not TCP or UDP", "port 0"}},
		}
		for _, tt := range tests {
			t.Run(tt.name, func(t *testing.T) {
				err := s.Update(tt.vips, tt.svcs, tt.locals)
				if err == nil {
					t.Fatal("accepted")
				}
				for _, w := range tt.wantErr {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not say %q", err, w)
					}
				}
			})
		}
		// Nothing was written.
		check(t, nil, nil, nil)
	})

	t.Run("sockets", func(t *testing.T) {
		for _, q := range []int{-1, 2} {
			if err := s.SetSocket(q, xsk); err == nil {
				t.Errorf("SetSocket(%d) accepted: the map has queues 0-1", q)
			}
		}
		if err := s.SetSocket(1, xsk); err != nil {
			t.Fatal(err)
		}
		for range 2 { // removing twice is fine
			if err := s.SetSocket(1, -1); err != nil {
				t.Fatal(err)
			}
		}
		if err := s.SetSocket(0, 0); err == nil { // stdin is no AF_XDP socket
			t.Error("SetSocket accepted a descriptor that is not an AF_XDP socket")
		}
	})

	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	for name, err := range map[string]error{
		"Update":    s.Update(nil, nil, nil),
		"SetSocket": s.SetSocket(0, xsk),
		"Stats":     func() error { _, err := s.Stats(); return err }(),
	} {
		if !errors.Is(err, net.ErrClosed) {
			t.Errorf("%s after Close: %v, want net.ErrClosed", name, err)
		}
	}
}

// BenchmarkSteerProgram measures the program per frame kind in the kernel
// (BPF_PROG_TEST_RUN with repeat), with a socket on queue 0; kernel-ns/frame
// is the kernel's own average. The Go side only issues the one syscall.
func BenchmarkSteerProgram(b *testing.B) {
	s := steerLoaded(b, 1)
	if err := s.SetSocket(0, progXSK(b)); err != nil {
		b.Fatal(err)
	}
	c := steerClient
	frames := []struct {
		name  string
		frame []byte
	}{
		{"tcp-service", packettest.TCP4(c, steerTo(steerVIP, 80), packettest.FlagACK, nil, packettest.WithPayloadLen(1400))},
		{"tcp-host", packettest.TCP4(c, steerHost, packettest.FlagACK, nil, packettest.WithPayloadLen(1400))},
		{"udp-local", packettest.UDP4(steerBackend, steerTo(steerLocal, 61000), nil, packettest.WithPayloadLen(512))},
		{"icmp-vip", packettest.ICMP4Echo(c, steerTo(steerVIP, 0), 1, 1, []byte("culvert"))},
		{"arp-vip", packettest.ARPRequest(steerRouter.MAC, steerRouter.Addr.Addr(), steerVIP)},
		{"ipv6", packettest.TCP6(packettest.Endpoint{MAC: c.MAC, Addr: netip.MustParseAddrPort("[2001:2::a]:40000")},
			packettest.Endpoint{MAC: steerHost.MAC, Addr: netip.MustParseAddrPort("[2001:2::101]:80")}, packettest.FlagACK, nil)},
	}
	for _, f := range frames {
		b.Run(f.name, func(b *testing.B) {
			b.ReportAllocs()
			_, per, err := s.prog.Benchmark(f.frame, b.N, b.ResetTimer)
			if err != nil {
				b.Fatal(err)
			}
			b.ReportMetric(float64(per.Nanoseconds()), "kernel-ns/frame")
		})
	}
}

// TestProgVerifier loads both programs and reports what the verifier and
// the JIT made of them.
func TestProgVerifier(t *testing.T) {
	s := steerLoaded(t, 1)
	d := decapLoaded(t)
	for name, p := range map[string]*ebpf.Program{"steer": s.prog, "decap": d.prog} {
		info, err := p.Info()
		if err != nil {
			t.Fatal(err)
		}
		insns, err := info.Instructions()
		if err != nil {
			t.Fatal(err)
		}
		verified, _ := info.VerifiedInstructions()
		jited, _ := info.JitedSize()
		t.Logf("%s: %d instructions loaded, %d processed by the verifier, %d bytes JIT-compiled", name, len(insns), verified, jited)
		if verified == 0 || len(insns) == 0 {
			t.Errorf("%s: the kernel reports no instructions", name)
		}
	}
}

// TestSteerUpdateKeepsCommonKeys runs frames for a service that every
// configuration holds while Update swaps between configurations: the
// frame must never pass, because Update adds before it deletes and never
// deletes a key the new configuration keeps.
func TestSteerUpdateKeepsCommonKeys(t *testing.T) {
	s := steerLoaded(t, 1)
	vip := steerVIP.As4()
	other := netip.MustParseAddr("198.18.1.9").As4()
	configs := [][]SteerService{
		{{vip, 80, 6}},
		{{other, 443, 6}, {vip, 80, 6}, {vip, 53, 17}},
	}
	frame := packettest.TCP4(steerClient, steerTo(steerVIP, 80), packettest.FlagSYN, nil)

	done := make(chan struct{})
	errc := make(chan error, 1)
	var updates atomic.Int64
	go func() {
		defer close(errc)
		for i := 0; ; i++ {
			updates.Add(1)
			select {
			case <-done:
				return
			default:
			}
			if err := s.Update([][4]byte{vip, other}, configs[i%2], [][4]byte{steerLocal.As4()}); err != nil {
				errc <- err
				return
			}
			if _, err := s.Stats(); err != nil {
				errc <- err
				return
			}
		}
	}()
	// Enough runs to overlap hundreds of updates: a version that deleted
	// everything before adding failed this in 5 test runs out of 5.
	var runs uint64
	for ; runs < 3000 || updates.Load() < 300; runs++ {
		if ret, _ := progRun(t, s.prog, frame); ret != xdpPass {
			t.Fatalf("run %d: action %d without a socket", runs, ret)
		}
	}
	close(done)
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	st, err := s.Stats()
	if err != nil {
		t.Fatal(err)
	}
	if st.Passed != 0 || st.RedirectFailed != runs {
		t.Errorf("counters %+v: the service was missing during an update", st)
	}
}
