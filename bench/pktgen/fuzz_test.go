package pktgen

import (
	"bytes"
	"testing"

	"github.com/culvert-lb/culvert/internal/header"
	"github.com/culvert-lb/culvert/internal/packettest"
)

// FuzzReceive: the receiver reads any bytes without panicking, finds a
// probe only where ParseProbe finds one in the L4 payload, and the Go
// reference of the XDP programs decides on anything too.
func FuzzReceive(f *testing.F) {
	for _, fx := range packettest.Fixtures() {
		f.Add(fx.Frame)
	}
	for _, k := range []Kind{UDP, TCPSYN, TCPEstablished} {
		for _, size := range []int{64, 72, 128} {
			tp := mustTemplate(f, testSpec(k, size, 3))
			b := make([]byte, tp.Len())
			tp.Write(b, 12345, 678)
			f.Add(b)
		}
	}
	m := Match{Proto: header.ProtoUDP, DstPort: 7, DstMAC: testDstMAC}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c rxCore
		c.frame(b, 1e9)
		st := c.stats()
		if st.Frames != 1 || st.NoProbe+st.Untracked+uint64(len(st.Streams)) != 1 {
			t.Fatalf("one frame counted as %+v", st)
		}
		if p, ok := probeOf(b); ok {
			if s, found := st.Stream(p.Stream); !found || s.First != p.Seq {
				t.Fatalf("probe %+v, stream %+v", p, s)
			}
		}
		matchFrame(m, b)
	})
}

// FuzzRewrite: any frame of any template, rewritten in place into any
// other, is the frame Write makes, with checksums a full recompute agrees
// with.
func FuzzRewrite(f *testing.F) {
	f.Add(uint8(0), uint16(64), uint32(1), uint64(0), int64(0), uint64(1), int64(1))
	f.Add(uint8(1), uint16(1518), uint32(1_000_000), uint64(1<<63), int64(-1), uint64(999_999), int64(1<<62))
	f.Add(uint8(2), uint16(72), uint32(64513), uint64(64512), int64(5), uint64(64513), int64(6))
	f.Fuzz(func(t *testing.T, kind uint8, size uint16, flows uint32, n1 uint64, ts1 int64, n2 uint64, ts2 int64) {
		s := testSpec(Kind(kind%3), MinFrameSize+int(size)%(MaxFrameSize-MinFrameSize+1), 1+int(flows%MaxFlows))
		tp := mustTemplate(t, s)
		a, b := make([]byte, tp.Len()), make([]byte, tp.Len())
		tp.Write(a, n1, ts1)
		tp.Rewrite(a, n2, ts2)
		tp.Write(b, n2, ts2)
		if !bytes.Equal(a, b) {
			t.Fatalf("rewritten\n%x\nwritten\n%x", a, b)
		}
		if !fullChecksumsOK(a) {
			t.Fatalf("checksums: %x", a)
		}
	})
}
