package pktgen

import (
	"encoding/binary"
	"net/netip"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/internal/header"
	"github.com/culvert-lb/culvert/internal/packettest"
	"github.com/culvert-lb/culvert/internal/testenv"
	"github.com/culvert-lb/culvert/nic"
)

var (
	testSrcMAC = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	testDstMAC = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	testSrc    = netip.MustParseAddr("198.19.0.2")
	testDst    = netip.MustParseAddrPort("198.18.1.1:7")
)

// testSpec is a spec of kind k, size bytes and flows flows from testSrc to
// testDst.
func testSpec(k Kind, size, flows int) Spec {
	return Spec{Kind: k, SrcMAC: testSrcMAC, DstMAC: testDstMAC, Src: testSrc, Dst: testDst, Flows: flows, FrameSize: size, Stream: 7}
}

func mustTemplate(t testing.TB, s Spec) *Template {
	t.Helper()
	tp, err := NewTemplate(s)
	if err != nil {
		t.Fatalf("NewTemplate(%+v): %v", s, err)
	}
	return tp
}

// fullChecksumsOK recomputes both checksums of an IPv4 UDP/TCP frame of
// ours from scratch with packettest's plain RFC 1071 sum, and reports
// whether they hold.
func fullChecksumsOK(f []byte) bool {
	ip := f[offIP:offL4]
	if packettest.Checksum(ip, 0) != 0 {
		return false
	}
	tl := int(binary.BigEndian.Uint16(ip[2:]))
	seg := f[offL4 : offIP+tl]
	var pseudo [12]byte
	copy(pseudo[0:8], ip[12:20])
	pseudo[9] = ip[9]
	binary.BigEndian.PutUint16(pseudo[10:], uint16(len(seg)))
	sum := uint32(^packettest.Checksum(pseudo[:], 0))
	if ip[9] == header.ProtoUDP && binary.BigEndian.Uint16(seg[6:]) == 0 {
		return false // we always send a checksum
	}
	return packettest.Checksum(seg, sum) == 0
}

// checkFrame checks frame n of template tp, stamped ts, field by field,
// with packettest's gopacket decoder.
func checkFrame(t testing.TB, tp *Template, f []byte, n uint64, ts int64) {
	t.Helper()
	s := tp.Spec()
	src := tp.Source(int(n % uint64(s.Flows)))
	var l4 packettest.Checker
	if s.Kind == UDP {
		l4 = packettest.UDP(packettest.SrcPort(src.Port()), packettest.DstPort(s.Dst.Port()))
	} else {
		flags := packettest.FlagSYN
		seq := uint32(n) * synSeqMul
		if s.Kind == TCPEstablished {
			flags = packettest.FlagACK | packettest.FlagPSH
			seq = tcpEstablishedISN + uint32(n/uint64(s.Flows))*uint32(s.payloadLen())
		}
		l4 = packettest.TCP(packettest.SrcPort(src.Port()), packettest.DstPort(s.Dst.Port()),
			packettest.TCPFlagsAre(flags), packettest.Seq(seq))
	}
	if len(f) != s.FrameSize-FCSSize {
		t.Errorf("frame %d: %d bytes, want %d", n, len(f), s.FrameSize-FCSSize)
	}
	packettest.Check(t, f, packettest.EthSrc(s.SrcMAC), packettest.EthDst(s.DstMAC),
		packettest.IPv4(packettest.Src(src.Addr()), packettest.Dst(s.Dst.Addr()), packettest.DF(true), packettest.TTL(64),
			packettest.TotalLenMatches(), packettest.ValidChecksums(), l4))
	p, ok := probeOf(f)
	switch want := tp.ProbeFormat(); {
	case want == ProbeNone && ok:
		t.Errorf("frame %d: probe %+v in a frame without room for one", n, p)
	case want != ProbeNone && !ok:
		t.Errorf("frame %d: no probe", n)
	case ok:
		seq := n
		if want == ProbeCompact {
			seq &= probeCompactMask
		}
		if p != (Probe{Stream: s.Stream, Seq: seq, Time: ts}) {
			t.Errorf("frame %d: probe %+v, want stream %d seq %d time %d", n, p, s.Stream, seq, ts)
		}
	}
}

// instantQueue is a nic.Mem whose transmissions complete at once, as a
// kernel that sends immediately: Transmit shows each frame to onTX, then
// recycles its chunk. With a clock it also charges perFrame of fake time
// for each frame transmitted, as a CPU-bound path would.
type instantQueue struct {
	*nic.Mem
	onTX     func(f []byte)
	clk      *fakeClock
	perFrame time.Duration
	batches  []int // sizes of the batches Transmit took, if recording
	record   bool

	// stall is fake time the transmission of frame stallAt takes, once:
	// the generator held back (descheduled, a full ring).
	stallAt uint64
	stall   time.Duration
	sent    uint64
}

func newInstantQueue(t testing.TB) *instantQueue {
	t.Helper()
	m, err := nic.NewMem(512, 2048, 256)
	if err != nil {
		t.Fatal(err)
	}
	return &instantQueue{Mem: m}
}

func (q *instantQueue) Transmit(d []nic.Desc) int {
	n := q.Mem.Transmit(d)
	if q.onTX != nil {
		umem := q.UMEM()
		for _, x := range d[:n] {
			q.onTX(umem[x.Addr : x.Addr+uint64(x.Len)])
		}
	}
	if q.record {
		q.batches = append(q.batches, n)
	}
	if q.clk != nil {
		q.clk.c.Advance(time.Duration(n) * q.perFrame)
		if q.stall > 0 && q.sent <= q.stallAt && q.sent+uint64(n) > q.stallAt {
			q.clk.c.Advance(q.stall)
		}
	}
	q.sent += uint64(n)
	q.DiscardTX()
	return n
}

// fakeClock is a clock for the generator on testenv.Clock: each reading
// advances it by step, as real time passes while the generator works,
// and sleep advances it by the time slept plus oversleep.
type fakeClock struct {
	c         testenv.Clock
	step      time.Duration
	oversleep time.Duration
	sleeps    int
}

func (f *fakeClock) now() int64 {
	f.c.Advance(f.step)
	return f.c.Now()
}

func (f *fakeClock) sleep(d time.Duration) {
	f.sleeps++
	f.c.Advance(d + f.oversleep)
}

// ipip wraps frame f's IP packet in an outer IPv4 header of protocol
// proto (RFC 2003 with 4), then cuts cut bytes off the end.
func ipip(f []byte, proto byte, cut int) []byte {
	outer := []byte{0x45, 0, 0, 0, 0, 0, 0, 0, 64, proto, 0, 0, 198, 18, 2, 100, 198, 18, 0, 11}
	binary.BigEndian.PutUint16(outer[2:], uint16(len(f)-header.EthernetMinimumSize+len(outer)))
	out := append(append(append([]byte(nil), f[:header.EthernetMinimumSize]...), outer...), f[header.EthernetMinimumSize:]...)
	return out[:len(out)-cut]
}
