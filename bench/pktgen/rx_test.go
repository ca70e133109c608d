package pktgen

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/internal/header"
	"github.com/culvert-lb/culvert/internal/packettest"
	"github.com/culvert-lb/culvert/nic"
)

// deliver feeds frames numbered seqs of template tp, each stamped at
// 1000*n ns and received 5 us later, to c.
func deliver(c *rxCore, tp *Template, seqs []uint64) {
	f := make([]byte, tp.Len())
	for _, n := range seqs {
		tp.Write(f, n, int64(1000*n))
		c.frame(f, int64(1000*n)+5000)
	}
}

func span(from, to uint64) []uint64 {
	var s []uint64
	for n := from; n <= to; n++ {
		s = append(s, n)
	}
	return s
}

func cat(parts ...[]uint64) []uint64 { return slices.Concat(parts...) }

// TestRxStream: loss, reordering and duplicates per stream, read from
// the sequence numbers, for both probe formats.
func TestRxStream(t *testing.T) {
	for _, tc := range []struct {
		name string
		seqs []uint64
		want StreamStats // ID 7
		lost uint64
	}{
		{"in order", span(0, 99), StreamStats{Received: 100, First: 0, Last: 99}, 0},
		{"three lost", cat(span(0, 9), span(11, 19), span(21, 29), span(31, 99)), StreamStats{Received: 97, First: 0, Last: 99}, 3},
		{"two swapped", cat(span(0, 4), []uint64{6, 5}, span(7, 99)), StreamStats{Received: 100, Reordered: 1, First: 0, Last: 99}, 0},
		{"one duplicated", cat(span(0, 50), []uint64{50}, span(51, 99)), StreamStats{Received: 101, Duplicates: 1, First: 0, Last: 99}, 0},
		{"duplicated late", cat(span(0, 99), []uint64{3}), StreamStats{Received: 101, Duplicates: 1, First: 0, Last: 99}, 0},
		{"starts late", span(100, 199), StreamStats{Received: 100, First: 100, Last: 199}, 0},
		{"first frame arrives last", cat(span(1, 99), []uint64{0}), StreamStats{Received: 100, Reordered: 1, First: 0, Last: 99}, 0},
		{"a gap", cat(span(0, 9), span(5000, 5009)), StreamStats{Received: 20, First: 0, Last: 5009}, 4990},
		{"too late to tell a duplicate", cat(span(0, 5000), []uint64{10}), StreamStats{Received: 5002, Reordered: 1, First: 0, Last: 5000}, 0},
		// The window moves up past a gap: the bits of numbers 4096
		// lower are cleared, so 4097 is new, 5 still a duplicate.
		{"window moves up", cat(span(0, 4095), []uint64{4100, 4097, 4097, 5}),
			StreamStats{Received: 4100, Reordered: 1, Duplicates: 2, First: 0, Last: 4100}, 3},
		{"window jumps", cat(span(0, 4095), []uint64{8192, 4097, 8191}),
			StreamStats{Received: 4099, Reordered: 2, First: 0, Last: 8192}, 8193 - 4099},
	} {
		for _, size := range []int{64, 512} { // compact and full probe
			t.Run(tc.name, func(t *testing.T) {
				tp := mustTemplate(t, testSpec(UDP, size, 10))
				var c rxCore
				deliver(&c, tp, tc.seqs)
				st := c.stats()
				want := tc.want
				want.ID = 7
				got, ok := st.Stream(7)
				if !ok || got != want || got.Lost() != tc.lost {
					t.Errorf("size %d:\n got %+v lost %d\nwant %+v lost %d", size, got, got.Lost(), want, tc.lost)
				}
				if st.Frames != uint64(len(tc.seqs)) || st.Bytes != uint64(len(tc.seqs)*tp.Len()) || st.NoProbe != 0 {
					t.Errorf("frames %d bytes %d no-probe %d", st.Frames, st.Bytes, st.NoProbe)
				}
				if st.Latency.Count() != uint64(len(tc.seqs)) || st.Latency.Min() != 5*time.Microsecond || st.Latency.Max() != 5*time.Microsecond {
					t.Errorf("latency %v", &st.Latency)
				}
			})
		}
	}
}

// TestRxMergeSplitStream: a stream whose flows a load balancer spreads
// over three backends shows gaps at each, none once merged; a frame lost
// at one backend shows in the merge.
func TestRxMergeSplitStream(t *testing.T) {
	tp := mustTemplate(t, testSpec(UDP, 128, 3))
	var backends [3]rxCore
	f := make([]byte, tp.Len())
	for n := uint64(0); n < 3000; n++ {
		if n == 1500 {
			continue // lost
		}
		tp.Write(f, n, int64(n))
		backends[n%3].frame(f, int64(n)+int64(n%3+1)*1000)
	}
	var merged RxStats
	for i := range backends {
		st := backends[i].stats()
		s, _ := st.Stream(7)
		if s.Lost() < 900 || s.Reordered != 0 {
			t.Errorf("backend %d alone: %+v, lost %d", i, s, s.Lost())
		}
		merged.Merge(&st)
	}
	s, ok := merged.Stream(7)
	if !ok || s.Received != 2999 || s.Lost() != 1 || s.First != 0 || s.Last != 2999 || s.Reordered != 0 || s.Duplicates != 0 {
		t.Errorf("merged: %+v lost %d", s, s.Lost())
	}
	if merged.Frames != 2999 || merged.Latency.Count() != 2999 || merged.Latency.Min() != time.Microsecond || merged.Latency.Max() != 3*time.Microsecond {
		t.Errorf("merged: %v", &merged)
	}
	if r, d, o, l := merged.Total(); r != 2999 || d != 0 || o != 0 || l != 1 {
		t.Errorf("total %d %d %d %d", r, d, o, l)
	}
}

// TestRxMergeStreams: streams merge by ID, in order, whichever receivers
// saw them.
func TestRxMergeStreams(t *testing.T) {
	a := RxStats{Frames: 3, Streams: []StreamStats{{ID: 1, Received: 1, First: 5, Last: 5}, {ID: 9, Received: 2, First: 0, Last: 1}}}
	b := RxStats{Frames: 4, NoProbe: 1, Untracked: 2, Future: 3, Streams: []StreamStats{{ID: 4, Received: 1, First: 7, Last: 7}, {ID: 9, Received: 1, First: 2, Last: 2, Reordered: 1}}}
	a.Merge(&b)
	want := []StreamStats{{ID: 1, Received: 1, First: 5, Last: 5}, {ID: 4, Received: 1, First: 7, Last: 7}, {ID: 9, Received: 3, First: 0, Last: 2, Reordered: 1}}
	if !slices.Equal(a.Streams, want) || a.Frames != 7 || a.NoProbe != 1 || a.Untracked != 2 || a.Future != 3 {
		t.Errorf("merged %+v", a)
	}
	if _, ok := a.Stream(5); ok {
		t.Error("stream 5 found")
	}
	var s StreamStats
	s.Merge(StreamStats{})
	if s != (StreamStats{}) || s.Lost() != 0 {
		t.Errorf("empty merge: %+v", s)
	}
	if out := a.String(); !strings.Contains(out, "stream 9: received 3 (0..2), lost 0, reordered 1") {
		t.Errorf("String:\n%s", out)
	}
}

// TestRxFrames: what is not a probe is counted as such and never
// misread; streams beyond MaxStreams and probes from the future are
// counted apart.
func TestRxFrames(t *testing.T) {
	udp := mustTemplate(t, testSpec(UDP, 128, 1))
	good := udp.Frame()
	tcp64 := mustTemplate(t, testSpec(TCPSYN, 64, 1)).Frame()
	tcpFull := mustTemplate(t, testSpec(TCPEstablished, 128, 1))
	ep := func(a string) packettest.Endpoint {
		return packettest.Endpoint{MAC: testSrcMAC, Addr: netip.MustParseAddrPort(a)}
	}
	withOptions := packettest.UDP4(ep("198.19.0.2:1"), ep("198.18.1.1:7"), udp.Frame()[udp.pay:], packettest.WithIPOptions([]byte{1, 1, 1, 0}))
	fragment := packettest.Fragment4(packettest.UDP4(ep("198.19.0.2:1"), ep("198.18.1.1:7"), good[udp.pay:]), 16)[0]
	for _, tc := range []struct {
		name  string
		frame []byte
		probe bool
	}{
		{"udp", good, true},
		{"tcp with a probe", tcpFull.Frame(), true},
		{"udp with IP options", withOptions, true},
		{"tcp without room for a probe", tcp64, false},
		{"first fragment", fragment, false},
		{"arp", packettest.ARPRequest(testSrcMAC, testSrc, testDst.Addr()), false},
		{"udp6", packettest.UDP6(ep("[2001:2::1]:1"), ep("[2001:2::2]:7"), good[udp.pay:]), false},
		{"cut in the ip header", good[:30], false},
		{"cut in the probe", good[:udp.pay+10], false},
		{"udp length beyond the packet", func() []byte { f := udp.Frame(); f[offL4+4] = 0xff; return f }(), false},
		{"ip total length beyond the frame", func() []byte { f := udp.Frame(); f[offIP+2] = 0xff; return f }(), false},
		{"tcp data offset beyond the segment", func() []byte { f := tcpFull.Frame(); f[offL4+12] = 0xf0; return f }(), false},
		{"empty", nil, false},
		{"ipip udp", ipip(good, header.ProtoIPIP, 0), true},
		{"ipip tcp with a probe", ipip(tcpFull.Frame(), header.ProtoIPIP, 0), true},
		{"ipip in ipip", ipip(ipip(good, header.ProtoIPIP, 0), header.ProtoIPIP, 0), false},
		{"ipip cut in the inner probe", ipip(good[:udp.pay+10], header.ProtoIPIP, 0), false},
		{"ipip, outer total length beyond the frame", ipip(good, header.ProtoIPIP, 4), false},
		{"udp in an outer header of protocol 17", ipip(good, header.ProtoUDP, 0), false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var c rxCore
			c.frame(tc.frame, 1e9)
			st := c.stats()
			if got := st.NoProbe == 0; got != tc.probe || st.Frames != 1 {
				t.Errorf("probe found %v, want %v: %+v", got, tc.probe, st)
			}
		})
	}

	var c rxCore
	f := make([]byte, udp.Len())
	for id := range uint32(MaxStreams + 2) {
		s := testSpec(UDP, 128, 1)
		s.Stream = id
		mustTemplate(t, s).Write(f, 0, 10)
		c.frame(f, 20)
	}
	udp.Write(f, 1, 30) // from the future
	c.frame(f, 20)
	st := c.stats()
	if len(st.Streams) != MaxStreams || st.Untracked != 2 || st.Future != 1 || st.Latency.Count() != MaxStreams {
		t.Errorf("%d streams, %d untracked, %d future, latency %v", len(st.Streams), st.Untracked, st.Future, &st.Latency)
	}
	if !slices.IsSortedFunc(st.Streams, func(a, b StreamStats) int { return int(a.ID) - int(b.ID) }) {
		t.Error("streams not sorted")
	}
}

func clock2() int64    { return 2 }
func clock1000() int64 { return 1000 }

// TestRxPoll: frames are read off the queue, counted and released.
func TestRxPoll(t *testing.T) {
	m, err := nic.NewMem(256, 2048, 256)
	if err != nil {
		t.Fatal(err)
	}
	tp := mustTemplate(t, testSpec(UDP, 64, 1))
	f := make([]byte, tp.Len())
	free := m.Free()
	for n := range uint64(100) {
		tp.Write(f, n, 1)
		if !m.Inject(f) {
			t.Fatal("inject")
		}
	}
	var c rxCore
	var d [BatchSize]nic.Desc
	if n := c.poll(m, d[:], clock2); n != BatchSize {
		t.Fatalf("first poll: %d", n)
	}
	if n := c.poll(m, d[:], clock2); n != 36 {
		t.Fatalf("second poll: %d", n)
	}
	if n := c.poll(m, d[:], clock2); n != 0 {
		t.Fatalf("third poll: %d", n)
	}
	st := c.stats()
	if s, _ := st.Stream(7); s.Received != 100 || s.Lost() != 0 || m.Free() != free || m.Released != 100 {
		t.Errorf("%+v; %d chunks free, %d before", s, m.Free(), free)
	}
}

// TestRxNoAllocs: reading a frame, and a batch off a queue, allocates
// nothing.
func TestRxNoAllocs(t *testing.T) {
	tp := mustTemplate(t, testSpec(UDP, 64, 1))
	f := make([]byte, tp.Len())
	var c rxCore
	n := uint64(0)
	if a := testing.AllocsPerRun(1000, func() { n++; tp.Write(f, n, 1); c.frame(f, 1000) }); a != 0 {
		t.Errorf("frame: %v allocations", a)
	}
	m, err := nic.NewMem(256, 2048, 256)
	if err != nil {
		t.Fatal(err)
	}
	var d [BatchSize]nic.Desc
	if a := testing.AllocsPerRun(100, func() {
		for range BatchSize {
			n++
			tp.Write(f, n, 1)
			m.Inject(f)
		}
		c.poll(m, d[:], clock1000)
	}); a != 0 {
		t.Errorf("poll: %v allocations", a)
	}
}

// BenchmarkRx is the receiver's user-space cost per frame (in order, one
// stream), without the kernel's copy into the UMEM.
func BenchmarkRx(b *testing.B) {
	tp := mustTemplate(b, testSpec(UDP, 64, 1))
	f := make([]byte, tp.Len())
	var c rxCore
	b.ReportAllocs()
	n := uint64(0)
	for b.Loop() {
		n++
		binaryPutSeqCompact(f, tp, n)
		c.frame(f, 1000)
	}
}

// binaryPutSeqCompact sets the compact probe's sequence number without
// fixing checksums (the receiver does not check them).
func binaryPutSeqCompact(f []byte, tp *Template, n uint64) { putUint48(f[tp.pay+probeCompactSeq:], n) }
