package pktgen

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/internal/header"
	"github.com/culvert-lb/culvert/internal/packettest"
	"github.com/culvert-lb/culvert/internal/testenv"
	"github.com/culvert-lb/culvert/nic"
)

// The programs, run by the kernel on frames we hand it
// (BPF_PROG_TEST_RUN), decide as matchFrame, their Go reference, does.
func TestProgVerdicts(t *testing.T) {
	testenv.RequireRoot(t)
	udp := mustTemplate(t, testSpec(UDP, 128, 1)).Frame()
	tcp := mustTemplate(t, testSpec(TCPSYN, 64, 1)).Frame()
	ep := func(mac [6]byte, a string) packettest.Endpoint {
		return packettest.Endpoint{MAC: mac, Addr: netip.MustParseAddrPort(a)}
	}
	from, to := ep(testSrcMAC, "198.19.0.2:1024"), ep(testDstMAC, "198.18.1.1:7")
	frames := []struct {
		name  string
		frame []byte
	}{
		{"udp", udp},
		{"tcp", tcp},
		{"udp, other port", packettest.UDP4(from, ep(testDstMAC, "198.18.1.1:8"), nil)},
		{"udp, port 7 swapped bytes", packettest.UDP4(from, ep(testDstMAC, "198.18.1.1:1792"), nil)},
		{"udp, other dst", packettest.UDP4(from, ep(testDstMAC, "198.18.1.2:7"), nil)},
		{"udp, dst differs in the last byte only", packettest.UDP4(from, ep(testDstMAC, "198.18.1.129:7"), nil)},
		{"udp, other src", packettest.UDP4(ep(testSrcMAC, "198.18.9.9:1"), to, nil)},
		{"udp, to another MAC", packettest.UDP4(from, ep([6]byte{0x02, 0, 0, 0, 0, 0x03}, "198.18.1.1:7"), nil)},
		{"udp, to a MAC differing in the first byte", packettest.UDP4(from, ep([6]byte{0x06, 0, 0, 0, 0, 0x02}, "198.18.1.1:7"), nil)},
		{"udp with ip options", packettest.UDP4(from, to, nil, packettest.WithIPOptions([]byte{1, 1, 1, 0}))},
		{"first fragment", packettest.Fragment4(packettest.UDP4(from, to, make([]byte, 64)), 16)[0]},
		{"second fragment", packettest.Fragment4(packettest.UDP4(from, to, make([]byte, 64)), 16)[1]},
		{"icmp", packettest.ICMP4Echo(from, to, 1, 1, nil)},
		{"arp", packettest.ARPRequest(testSrcMAC, testSrc, testDst.Addr())},
		{"udp6", packettest.UDP6(ep(testSrcMAC, "[2001:2::1]:1"), ep(testDstMAC, "[2001:2::2]:7"), nil)},
		{"cut in the ports", udp[:progPortsEnd-1]},
		{"just the ports", udp[:progPortsEnd]},
		{"ipip udp", ipip(udp, 4, 0)},
		{"ipip tcp", ipip(tcp, 4, 0)},
		{"ipip, outer protocol 17", ipip(udp, 17, 0)},
		{"ipip cut in the inner ports", ipip(udp[:progPortsEnd], 4, 1)},
	}
	matches := []struct {
		name string
		m    Match
	}{
		{"udp/7", Match{Proto: header.ProtoUDP, DstPort: 7}},
		{"tcp/7", Match{Proto: header.ProtoTCP, DstPort: 7}},
		{"udp/7 to 198.18.1.1", Match{Proto: header.ProtoUDP, DstPort: 7, Dst: testDst.Addr()}},
		{"udp/7 from 198.19.0.0/24", Match{Proto: header.ProtoUDP, DstPort: 7, Src: netip.MustParsePrefix("198.19.0.0/24")}},
		{"udp/7 from 198.19.0.2/32", Match{Proto: header.ProtoUDP, DstPort: 7, Src: netip.MustParsePrefix("198.19.0.2/32")}},
		{"udp/7 from anywhere (/0)", Match{Proto: header.ProtoUDP, DstPort: 7, Src: netip.MustParsePrefix("0.0.0.0/0")}},
		{"udp/7 from 128.0.0.0/1", Match{Proto: header.ProtoUDP, DstPort: 7, Src: netip.MustParsePrefix("128.0.0.0/1")}},
		{"udp/7 to our MAC", Match{Proto: header.ProtoUDP, DstPort: 7, DstMAC: testDstMAC}},
		{"ipip udp/7", Match{Proto: header.ProtoUDP, DstPort: 7, Encap: true}},
		{"ipip udp/7 to 198.18.1.1", Match{Proto: header.ProtoUDP, DstPort: 7, Dst: testDst.Addr(), Encap: true}},
	}
	for _, m := range matches {
		for _, receiver := range []bool{false, true} {
			name := "sink/" + m.name
			queues := 0
			if receiver {
				name, queues = "receiver/"+m.name, 1
			}
			t.Run(name, func(t *testing.T) {
				p, err := loadProg("pktgen_test", m.m, queues)
				if err != nil {
					t.Fatal(err)
				}
				defer p.close()
				var want Counts
				for _, f := range frames {
					ret, _, err := p.prog.Test(f.frame)
					if err != nil {
						t.Fatal(err)
					}
					v := matchFrame(m.m, f.frame)
					wantRet := uint32(xdpPass)
					switch {
					case v == verdictTake && !receiver:
						wantRet = xdpDrop
						want.Packets++
						want.Bytes += uint64(len(f.frame))
					case v == verdictTake:
						want.NoSocket++ // no socket in the XSKMAP: passed
					case v == verdictFlooded:
						want.Flooded++
					}
					if ret != wantRet {
						t.Errorf("%s: verdict %d, want %d", f.name, ret, wantRet)
					}
				}
				got, err := p.counts()
				if err != nil || got != want {
					t.Errorf("counts %+v (%v), want %+v", got, err, want)
				}
				if want.Packets+want.NoSocket == 0 {
					t.Error("the table matches nothing") // a test that cannot fail
				}
			})
		}
	}
}

// vethPair is a veth pair between two namespaces: the generator's end and
// the sink's.
type vethPair struct {
	gen, sink       *testenv.NetNS
	genMAC, sinkMAC [6]byte
}

const (
	vethGen  = "pg-gen"
	vethSink = "pg-sink"
)

var (
	vethGenAddr  = netip.MustParseAddr("198.18.0.1")
	vethSinkAddr = netip.MustParseAddrPort("198.18.0.2:9")
)

func newVethPair(t *testing.T) *vethPair {
	t.Helper()
	testenv.RequireRoot(t)
	v := &vethPair{gen: testenv.NewNetNS(t), sink: testenv.NewNetNS(t)}
	testenv.NewVeth(t, v.gen, vethGen, v.sink, vethSink)
	mac := func(ns *testenv.NetNS, name string) (m [6]byte) {
		if err := ns.Do(func() error {
			ifi, err := net.InterfaceByName(name)
			if err == nil {
				m = [6]byte(ifi.HardwareAddr)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return m
	}
	v.genMAC, v.sinkMAC = mac(v.gen, vethGen), mac(v.sink, vethSink)
	return v
}

// spec is a stream from the generator's end to the sink's.
func (v *vethPair) spec(k Kind, size, flows int) Spec {
	return Spec{Kind: k, SrcMAC: v.genMAC, DstMAC: v.sinkMAC, Src: vethGenAddr, Dst: vethSinkAddr, Flows: flows, FrameSize: size, Stream: 7}
}

// queue opens an AF_XDP queue on the generator's end, closed by cleanup.
func (v *vethPair) queue(t *testing.T) *nic.XDP {
	t.Helper()
	var x *nic.XDP
	if err := v.gen.Do(func() (err error) {
		x, err = nic.OpenXDP(nic.XDPConfig{Iface: vethGen})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { x.Close() })
	return x
}

func (v *vethPair) xdpSink(t *testing.T, m Match) *XDPSink {
	t.Helper()
	var s *XDPSink
	if err := v.sink.Do(func() (err error) {
		s, err = NewXDPSink(SinkConfig{Iface: vethSink, Match: m})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// waitCounts polls the sink until it has counted want frames, for up to a
// second, and returns its last reading.
func waitCounts(t *testing.T, s *XDPSink, want uint64) Counts {
	t.Helper()
	var c Counts
	for deadline := time.Now().Add(time.Second); ; time.Sleep(5 * time.Millisecond) {
		var err error
		if c, err = s.Counts(); err != nil {
			t.Fatal(err)
		}
		if c.Packets >= want || time.Now().After(deadline) {
			return c
		}
	}
}

// TestSinkCountsExactly: at a low rate the sink counts exactly the frames
// the generator sent, every kind and size, 1 or a million flows, and the
// bytes with them.
func TestSinkCountsExactly(t *testing.T) {
	v := newVethPair(t)
	q := v.queue(t)
	for _, k := range []Kind{UDP, TCPSYN, TCPEstablished} {
		for _, size := range []int{64, 512, 1518} {
			for _, flows := range []int{1, 1_000_000} {
				if flows > 1 && size != 64 {
					continue
				}
				t.Run(fmt.Sprintf("%v/%d/flows=%d", k, size, flows), func(t *testing.T) {
					tp := mustTemplate(t, v.spec(k, size, flows))
					m := tp.Match()
					m.DstMAC = v.sinkMAC
					s := v.xdpSink(t, m)
					g, err := NewGenerator(q, tp, GeneratorConfig{Rate: 50e3})
					if err != nil {
						t.Fatal(err)
					}
					const n = 10000
					st, err := g.Run(context.Background(), 5*time.Second, n)
					if err != nil || st.Sent != n || st.InFlight != 0 {
						t.Fatalf("generator: %v (%v)", st, err)
					}
					c := waitCounts(t, s, n)
					if c != (Counts{Packets: n, Bytes: n * uint64(tp.Len())}) {
						t.Errorf("sink counted %+v; sent %d frames of %d bytes (%v)", c, n, tp.Len(), st)
					}
				})
			}
		}
	}
}

// TestPacedRateOnVeth: a run paced at 50k frames/s for a second achieves
// the rate within 5%, and the sink sees all of it.
func TestPacedRateOnVeth(t *testing.T) {
	v := newVethPair(t)
	tp := mustTemplate(t, v.spec(UDP, 64, 256))
	s := v.xdpSink(t, tp.Match())
	g, err := NewGenerator(v.queue(t), tp, GeneratorConfig{Rate: 50e3})
	if err != nil {
		t.Fatal(err)
	}
	st, err := g.Run(context.Background(), time.Second, 0)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("paced at 50000 frames/s: %v", st)
	if c := waitCounts(t, s, st.Sent); c.Packets != st.Sent {
		t.Errorf("sink counted %d of %d", c.Packets, st.Sent)
	}
	if pps := st.PPS(); pps < 47500 || pps > 52500 {
		switch {
		case raceEnabled:
			t.Skipf("achieved %.0f frames/s under the race detector", pps)
		case st.CPU < st.Elapsed*9/10:
			// It spins between batches: with less than 90% of a CPU,
			// other tenants took the rest, and the rate says nothing
			// of the pacer.
			t.Skipf("achieved %.0f frames/s, but the generator got %v of CPU in %v: starved", pps, st.CPU, st.Elapsed)
		}
		t.Errorf("achieved %.0f frames/s", pps)
	}
}

// TestReceiverOnVeth: through a Receiver at a modest paced rate nothing is
// lost, reordered or duplicated, and one-way latency is measured, non-zero
// and under 100 ms, for the compact probe (64 bytes) and the full one, with
// the receiver sleeping when idle and busy-polling. Each case makes a new
// Receiver on the same queue, as a trial would.
func TestReceiverOnVeth(t *testing.T) {
	v := newVethPair(t)
	q := v.queue(t)
	for _, tc := range []struct {
		kind Kind
		size int
		busy bool
	}{{UDP, 64, false}, {UDP, 512, false}, {UDP, 1518, false}, {TCPEstablished, 512, false}, {UDP, 64, true}} {
		name := fmt.Sprintf("%v/%d", tc.kind, tc.size)
		if tc.busy {
			name += "/busy-poll"
		}
		t.Run(name, func(t *testing.T) {
			tp := mustTemplate(t, v.spec(tc.kind, tc.size, 100))
			var r *Receiver
			if err := v.sink.Do(func() (err error) {
				r, err = NewReceiver(ReceiverConfig{Iface: vethSink, Match: tp.Match(), BusyPoll: tc.busy,
					XDP: nic.XDPConfig{Frames: 16384, RxSize: 8192, FillSize: 8192}}) // 400 ms of frames
				return err
			}); err != nil {
				t.Fatal(err)
			}
			defer r.Close()
			ctx, cancel := context.WithCancel(context.Background())
			runErr := make(chan error, 1)
			go func() { runErr <- r.Run(ctx) }()

			g, err := NewGenerator(q, tp, GeneratorConfig{Rate: 20e3})
			if err != nil {
				t.Fatal(err)
			}
			g.cur = tp.cursorAt(1000) // a stream need not start at 0
			const n = 10000
			st, err := g.Run(context.Background(), 5*time.Second, n)
			if err != nil || st.Sent != n {
				t.Fatalf("generator: %v (%v)", st, err)
			}
			for deadline := time.Now().Add(2 * time.Second); r.Frames() < n && time.Now().Before(deadline); {
				time.Sleep(5 * time.Millisecond)
			}
			cancel()
			if err := <-runErr; err != nil {
				t.Fatal(err)
			}
			rs := r.Stats()
			counts, err := r.Counts()
			if err != nil {
				t.Fatal(err)
			}
			qs, err := r.QueueStats()
			if err != nil {
				t.Fatal(err)
			}
			dropped := qs[0].Kernel.RxRingFull + qs[0].Kernel.RxDropped
			t.Logf("%v; program %+v; dropped by the kernel %d", &rs, counts, dropped)
			s, _ := rs.Stream(7)
			if s.Received+dropped != n || counts.Packets != n || s.Reordered != 0 || s.Duplicates != 0 || rs.NoProbe != 0 || rs.Future != 0 {
				t.Fatalf("stream %+v and %d dropped for %d frames; %d without probe, %d from the future; program %+v",
					s, dropped, n, rs.NoProbe, rs.Future, counts)
			}
			if dropped > 0 {
				// The receiver was off the CPU for longer than its
				// RX ring lasts (400 ms): other tenants, not a loss
				// in the path under test.
				t.Skipf("the receiver was starved: the kernel dropped %d frames for a full RX ring", dropped)
			}
			if want := (StreamStats{ID: 7, Received: n, First: 1000, Last: 1000 + n - 1}); s != want {
				t.Errorf("stream %+v, want %+v", s, want)
			}
			if raceEnabled {
				return // latency under the race detector says nothing
			}
			l := &rs.Latency
			tail := l.Percentile(0.999)
			if tc.busy {
				// Two threads spinning (generator and receiver) on a
				// 2-CPU machine shared with other work: the tail is
				// the scheduler's time slice. Only the median counts.
				tail = l.Percentile(0.5)
			}
			if l.Count() != n || l.Min() <= 0 || l.Percentile(0.5) <= 0 || tail >= 100*time.Millisecond || l.Max() >= time.Second {
				t.Errorf("latency %v", l)
			}
		})
	}
}

// TestMaxRateIntoSink measures, without asserting, the most frames per
// second the generator gets into an XDPSink across a veth pair, from a
// thread pinned to one CPU (the sink runs in the veth's transmit path, on
// the same CPU), for 2 s per frame size, and per second of the thread's
// CPU time (the machine may give it less than the whole CPU: other
// tenants). It needs root and CULVERT_TPUT=1,
// as the other throughput measurements:
//
//	CULVERT_TPUT=1 go test -run TestMaxRateIntoSink -v -count=1 ./bench/pktgen
func TestMaxRateIntoSink(t *testing.T) {
	if os.Getenv("CULVERT_TPUT") != "1" {
		t.Skip("throughput measurement: set CULVERT_TPUT=1 (root, about 4 s)")
	}
	v := newVethPair(t)
	q := v.queue(t)
	cpu := runtime.NumCPU() - 1
	for _, size := range []int{64, 1518} {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			tp := mustTemplate(t, v.spec(UDP, size, 256))
			s := v.xdpSink(t, tp.Match())
			g, err := NewGenerator(q, tp, GeneratorConfig{Pin: true, CPU: cpu})
			if err != nil {
				t.Fatal(err)
			}
			st, err := g.Run(context.Background(), 2*time.Second, 0)
			if err != nil {
				t.Fatal(err)
			}
			c := waitCounts(t, s, st.Sent)
			perCPU := 0.0
			if st.CPU > 0 {
				perCPU = float64(st.Sent) / st.CPU.Seconds()
			}
			t.Logf("%d-byte frames, generator pinned to cpu %d: sent %.0f frames/s (%.0f per second of its CPU time), sink counted %.0f frames/s (%.1f%% of sent); %v",
				size, cpu, st.PPS(), perCPU, float64(c.Packets)/st.Elapsed.Seconds(), 100*float64(c.Packets)/float64(st.Sent), st)
			if c.Packets == 0 {
				t.Error("the sink counted nothing")
			}
		})
	}
}
