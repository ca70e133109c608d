package pktgen

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"

	"github.com/google/gopacket"
	"github.com/google/gopacket/layers"

	"github.com/culvert-lb/culvert/internal/header"
)

var testSizes = []int{64, 65, 70, 71, 72, 77, 78, 128, 512, 1024, 1280, 1518}

// TestTemplateFrames: frame 0 of every kind and size has the length, the
// addresses, ports, flags and valid checksums asked for, and the probe the
// payload has room for.
func TestTemplateFrames(t *testing.T) {
	for _, k := range []Kind{UDP, TCPSYN, TCPEstablished} {
		for _, size := range testSizes {
			t.Run(fmt.Sprintf("%v/%d", k, size), func(t *testing.T) {
				tp := mustTemplate(t, testSpec(k, size, 1))
				if tp.Len() != size-4 {
					t.Errorf("Len %d, want %d", tp.Len(), size-4)
				}
				checkFrame(t, tp, tp.Frame(), 0, 0)
				var want ProbeFormat
				pay := size - 4 - 14 - 20 - 8
				if k != UDP {
					pay -= 12
				}
				switch {
				case pay >= 24:
					want = ProbeFull
				case pay >= 18:
					want = ProbeCompact
				}
				if tp.ProbeFormat() != want {
					t.Errorf("probe %v, want %v (payload %d bytes)", tp.ProbeFormat(), want, pay)
				}
			})
		}
	}
}

// TestTemplateGopacketDecodes: gopacket decodes the frames as
// Ethernet/IPv4/UDP or TCP with the payload we put there.
func TestTemplateGopacketDecodes(t *testing.T) {
	for _, k := range []Kind{UDP, TCPSYN, TCPEstablished} {
		t.Run(k.String(), func(t *testing.T) {
			tp := mustTemplate(t, testSpec(k, 512, 100))
			f := make([]byte, tp.Len())
			tp.Write(f, 12345, 987654321)
			pkt := gopacket.NewPacket(f, layers.LayerTypeEthernet, gopacket.Default)
			if el := pkt.ErrorLayer(); el != nil {
				t.Fatalf("decode: %v", el.Error())
			}
			app := pkt.ApplicationLayer()
			if app == nil {
				t.Fatal("no payload")
			}
			p, ok := ParseProbe(app.Payload())
			if !ok || p != (Probe{Stream: 7, Seq: 12345, Time: 987654321}) {
				t.Errorf("probe %+v (%v)", p, ok)
			}
			if k == UDP && pkt.Layer(layers.LayerTypeUDP) == nil || k != UDP && pkt.Layer(layers.LayerTypeTCP) == nil {
				t.Errorf("layers %v", pkt.Layers())
			}
		})
	}
}

// TestRewriteChecksums is the incremental checksum property: frames
// written from the template, and one frame rewritten in place many times
// over, always carry the checksums a full recompute gives, and the
// rewritten frame is byte for byte the frame Write makes.
func TestRewriteChecksums(t *testing.T) {
	rewrites := 20000
	if raceEnabled {
		rewrites = 2000
	}
	for _, k := range []Kind{UDP, TCPSYN, TCPEstablished} {
		for _, size := range []int{64, 72, 78, 512, 1518} {
			for _, flows := range []int{1, 1000, 1_000_000} {
				t.Run(fmt.Sprintf("%v/%d/flows=%d", k, size, flows), func(t *testing.T) {
					tp := mustTemplate(t, testSpec(k, size, flows))
					rng := rand.New(rand.NewPCG(uint64(size), uint64(flows)))
					inPlace := tp.Frame()
					fresh := make([]byte, tp.Len())
					for i := range rewrites {
						n := rng.Uint64() >> rng.IntN(64) // all magnitudes
						if i%3 == 0 {
							n = uint64(i) // consecutive frames too
						}
						ts := int64(rng.Uint64() >> rng.IntN(64))
						tp.Rewrite(inPlace, n, ts)
						tp.Write(fresh, n, ts)
						if !bytes.Equal(inPlace, fresh) {
							t.Fatalf("rewrite %d (frame %d): in place\n%x\nwritten\n%x", i, n, inPlace, fresh)
						}
						if !fullChecksumsOK(fresh) {
							t.Fatalf("rewrite %d (frame %d, ts %d): checksums do not verify:\n%x", i, n, ts, fresh)
						}
						if i%1000 == 0 {
							checkFrame(t, tp, fresh, n, ts)
						}
					}
				})
			}
		}
	}
}

// TestRewriteUDPChecksumZero: a UDP checksum that comes out as zero is
// sent as 0xffff (RFC 768), and the next rewrite patches on from there.
func TestRewriteUDPChecksumZero(t *testing.T) {
	tp := mustTemplate(t, testSpec(UDP, 128, 1))
	f := make([]byte, tp.Len())
	found := false
	for ts := int64(0); ts < 1<<20 && !found; ts++ {
		tp.Write(f, 1, ts)
		found = binary.BigEndian.Uint16(f[offUDPCheck:]) == 0xffff
	}
	if !found {
		t.Fatal("no timestamp gives a zero checksum")
	}
	if !fullChecksumsOK(f) {
		t.Fatalf("0xffff does not verify: %x", f)
	}
	for n := uint64(2); n < 100; n++ {
		tp.Rewrite(f, n, int64(n))
		if !fullChecksumsOK(f) {
			t.Fatalf("rewrite to frame %d after a 0xffff checksum: %x", n, f)
		}
	}
}

// TestCursor: the generator's cursor, stepped frame by frame, gives the
// fields Write computes by division, across flow, port and address
// wrap-arounds.
func TestCursor(t *testing.T) {
	for _, tc := range []struct {
		flows int
		ports PortRange
		start uint64
	}{
		{1, PortRange{}, 0},
		{7, PortRange{10, 12}, 0},
		{64512, PortRange{}, 64000},
		{64513, PortRange{}, 64000},
		{1_000_000, PortRange{}, 999_000},
		{1_000_000, PortRange{}, 1<<40 - 500},
	} {
		t.Run(fmt.Sprintf("flows=%d/ports=%v", tc.flows, tc.ports), func(t *testing.T) {
			s := testSpec(TCPEstablished, 100, tc.flows)
			s.SrcPorts = tc.ports
			tp := mustTemplate(t, s)
			c := tp.cursorAt(tc.start)
			for n := tc.start; n < tc.start+3000; n++ {
				if got, want := tp.fieldsAt(&c), tp.fieldsOf(n); got != want {
					t.Fatalf("frame %d: cursor %+v, want %+v", n, got, want)
				}
				tp.next(&c)
			}
		})
	}
}

// TestSources: flow i's source is the port range walked first, then the
// address.
func TestSources(t *testing.T) {
	s := testSpec(UDP, 64, 10)
	s.SrcPorts = PortRange{100, 103}
	tp := mustTemplate(t, s)
	want := []string{"198.19.0.2:100", "198.19.0.2:101", "198.19.0.2:102", "198.19.0.2:103", "198.19.0.3:100",
		"198.19.0.3:101", "198.19.0.3:102", "198.19.0.3:103", "198.19.0.4:100", "198.19.0.4:101", "198.19.0.2:100"}
	for i, w := range want {
		if got := tp.Source(i).String(); got != w {
			t.Errorf("flow %d: %s, want %s", i, got, w)
		}
	}
}

func TestSpecValidate(t *testing.T) {
	ok := testSpec(UDP, 64, 1)
	for _, tc := range []struct {
		name string
		edit func(*Spec)
		want string // substring of the error; "" for none
	}{
		{"valid", func(*Spec) {}, ""},
		{"defaults", func(s *Spec) { s.FrameSize, s.Flows, s.SrcPorts = 0, 0, PortRange{} }, ""},
		{"largest", func(s *Spec) { s.FrameSize, s.Flows, s.Kind = 1518, MaxFlows, TCPEstablished }, ""},
		{"unknown kind", func(s *Spec) { s.Kind = 9 }, "kind: unknown"},
		{"frame too small", func(s *Spec) { s.FrameSize = 63 }, "frame size: 63"},
		{"frame too big", func(s *Spec) { s.FrameSize = 1519 }, "frame size: 1519"},
		{"no src", func(s *Spec) { s.Src = netip.Addr{} }, "src: invalid IP"},
		{"src outside 198.18/15", func(s *Spec) { s.Src = netip.MustParseAddr("10.0.0.1") }, "src: 10.0.0.1 is not"},
		{"src ipv6", func(s *Spec) { s.Src = netip.MustParseAddr("2001:2::1") }, "src: 2001:2::1"},
		{"dst outside", func(s *Spec) { s.Dst = netip.MustParseAddrPort("192.0.2.1:7") }, "dst: 192.0.2.1 is not"},
		{"dst port 0", func(s *Spec) { s.Dst = netip.MustParseAddrPort("198.18.1.1:0") }, "dst: port 0"},
		{"ports reversed", func(s *Spec) { s.SrcPorts = PortRange{10, 9} }, "src ports: 10-9"},
		{"port 0", func(s *Spec) { s.SrcPorts = PortRange{0, 9} }, "src ports: 0-9"},
		{"flows negative", func(s *Spec) { s.Flows = -1 }, "flows: -1 not in"},
		{"too many flows", func(s *Spec) { s.Flows = MaxFlows + 1 }, "flows: 16777217 not in"},
		{"flows leave the range", func(s *Spec) {
			s.Src, s.Flows, s.SrcPorts = netip.MustParseAddr("198.19.255.250"), 100, PortRange{1, 10}
		},
			"need 10 addresses from 198.19.255.250"},
		{"stream too big for the compact probe", func(s *Spec) { s.Stream = 0x10000 }, "stream: 65536"},
		{"big stream, full probe", func(s *Spec) { s.Stream, s.FrameSize = 0x10000, 70 }, ""},
		{"big stream, no probe", func(s *Spec) { s.Stream, s.Kind = 0x10000, TCPSYN }, ""},
		{"several at once", func(s *Spec) { s.FrameSize, s.Dst = 10, netip.AddrPort{} }, "frame size: 10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := ok
			tc.edit(&s)
			err := s.Validate()
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("unexpected error: %v", err)
			case tc.want != "" && (err == nil || !strings.Contains(err.Error(), tc.want)):
				t.Fatalf("error %v, want one containing %q", err, tc.want)
			}
			if _, nerr := NewTemplate(s); (nerr == nil) != (err == nil) {
				t.Errorf("NewTemplate error %v, Validate %v", nerr, err)
			}
		})
	}
	if err := (Spec{}).Validate(); err == nil || strings.Count(err.Error(), "\n") < 2 {
		t.Errorf("the zero spec: %v; want every problem", err)
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{UDP: "udp", TCPSYN: "tcp-syn", TCPEstablished: "tcp-established", 7: "Kind(7)"} {
		if k.String() != want {
			t.Errorf("%d: %q, want %q", k, k.String(), want)
		}
	}
	if UDP.Protocol() != header.ProtoUDP || TCPSYN.Protocol() != header.ProtoTCP || TCPEstablished.Protocol() != header.ProtoTCP {
		t.Error("protocols")
	}
}

// TestTemplateNoAllocs: Write and Rewrite allocate nothing.
func TestTemplateNoAllocs(t *testing.T) {
	tp := mustTemplate(t, testSpec(TCPEstablished, 1518, 1000))
	f := make([]byte, tp.Len())
	n := uint64(0)
	if a := testing.AllocsPerRun(1000, func() { n++; tp.Write(f, n, int64(n)) }); a != 0 {
		t.Errorf("Write: %v allocations", a)
	}
	if a := testing.AllocsPerRun(1000, func() { n++; tp.Rewrite(f, n, int64(n)) }); a != 0 {
		t.Errorf("Rewrite: %v allocations", a)
	}
}

func BenchmarkTemplate(b *testing.B) {
	for _, k := range []Kind{UDP, TCPSYN} {
		for _, size := range []int{64, 1518} {
			tp := mustTemplate(b, testSpec(k, size, 1000))
			f := make([]byte, tp.Len())
			b.Run(fmt.Sprintf("Write/%v/%d", k, size), func(b *testing.B) {
				b.ReportAllocs()
				n := uint64(0)
				for b.Loop() {
					n++
					tp.Write(f, n, int64(n))
				}
			})
			b.Run(fmt.Sprintf("Rewrite/%v/%d", k, size), func(b *testing.B) {
				b.ReportAllocs()
				n := uint64(0)
				for b.Loop() {
					n++
					tp.Rewrite(f, n, int64(n))
				}
			})
		}
	}
}

// BenchmarkFields compares the generator's cursor with computing a frame's
// fields by division, as Write does.
func BenchmarkFields(b *testing.B) {
	tp := mustTemplate(b, testSpec(TCPEstablished, 64, 1_000_000))
	var sink fields
	b.Run("divide", func(b *testing.B) {
		b.ReportAllocs()
		n := uint64(0)
		for b.Loop() {
			n++
			sink = tp.fieldsOf(n)
		}
	})
	b.Run("cursor", func(b *testing.B) {
		b.ReportAllocs()
		c := tp.cursorAt(0)
		for b.Loop() {
			sink = tp.fieldsAt(&c)
			tp.next(&c)
		}
	})
	_ = sink
}
