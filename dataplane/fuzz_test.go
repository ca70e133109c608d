package dataplane

import (
	"testing"

	"github.com/culvert-lb/culvert/conntrack"
	pt "github.com/culvert-lb/culvert/internal/packettest"
)

// FuzzDecode: decode never panics, and a frame it refuses always has a
// reason.
func FuzzDecode(f *testing.F) {
	for _, fx := range pt.Fixtures() {
		f.Add(fx.Frame)
	}
	f.Fuzz(func(t *testing.T, frame []byte) {
		var p parsed
		var k conntrack.Key4
		decode(frame, &p, &k)
		switch p.kind {
		case kindDrop:
			if p.drop == DropNone {
				t.Fatal("drop without a reason")
			}
		case kindPass:
			if p.pass == PassNone {
				t.Fatal("pass without a reason")
			}
		}
	})
}

// FuzzPipeline runs arbitrary frames through a dataplane in each mode, with
// a flow already set up so that mutated frames can hit it: no panic, every
// frame gets exactly one verdict, every drop one reason, and nothing leaks.
func FuzzPipeline(f *testing.F) {
	for _, fx := range pt.Fixtures() {
		f.Add(fx.Frame, uint8(0))
	}
	syn := pt.TCP4(clientEP(40000), vipEP(), pt.FlagSYN, nil)
	f.Add(syn, uint8(1))
	f.Add(syn, uint8(2))
	f.Fuzz(func(t *testing.T, frame []byte, m uint8) {
		if len(frame) > 2048-256 {
			return
		}
		mode := []Mode{ModeNAT, ModeDSR, ModeIPIP}[m%3]
		l := newLab(t, labConfig(mode, 6), Options{})
		l.run(syn)
		l.run(frame)
		s := l.dp.Stats()
		var reasons uint64
		for _, n := range s.Drops {
			reasons += n
		}
		if s.TX+s.Pass+s.Drop != s.RX || reasons != s.Drop {
			t.Fatalf("counters do not add up: %+v", s)
		}
		if l.q.Free() != 256 {
			t.Fatalf("frames leaked: %d of 256 free", l.q.Free())
		}
	})
}
