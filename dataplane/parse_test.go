package dataplane

import (
	"testing"

	"github.com/culvert-lb/culvert/conntrack"
	pt "github.com/culvert-lb/culvert/internal/packettest"
)

// TestDecodeFixtures maps every golden fixture's classification to the
// pipeline's: each malformed kind has its own drop reason.
func TestDecodeFixtures(t *testing.T) {
	want := map[string]struct {
		kind kind
		drop DropReason
		pass PassReason
	}{
		pt.WantTCP:            {kind: kindFlow},
		pt.WantUDP:            {kind: kindFlow},
		pt.WantARP:            {kind: kindARP},
		pt.WantIPv6:           {kind: kindPass, pass: PassNotIPv4},
		pt.WantFragment:       {kind: kindDrop, drop: DropFragment},
		pt.WantIPv4Options:    {kind: kindDrop, drop: DropIPOptions},
		pt.WantTruncated:      {kind: kindDrop, drop: DropTruncated},
		pt.WantBadVersion:     {kind: kindDrop, drop: DropBadIPVersion},
		pt.WantBadIHL:         {kind: kindDrop, drop: DropBadIHL},
		pt.WantBadTotalLength: {kind: kindDrop, drop: DropBadTotalLength},
		pt.WantBadIPChecksum:  {kind: kindDrop, drop: DropBadIPChecksum},
		pt.WantUnknownProto:   {kind: kindPass, pass: PassOtherProto},
		pt.WantBadTCPOffset:   {kind: kindDrop, drop: DropBadTCPHeader},
	}
	icmp := map[string]kind{"icmp-echo-request": kindEcho, "icmp-frag-needed": kindICMPErr}
	seen := map[string]bool{}
	for _, fx := range pt.Fixtures() {
		t.Run(fx.Name, func(t *testing.T) {
			var p parsed
			var k conntrack.Key4
			decode(fx.Frame, &p, &k)
			if fx.Want == pt.WantICMP {
				if p.kind != icmp[fx.Name] {
					t.Fatalf("kind %d, want %d", p.kind, icmp[fx.Name])
				}
				return
			}
			w, ok := want[fx.Want]
			if !ok {
				t.Fatalf("fixture classification %q has no mapping", fx.Want)
			}
			seen[fx.Want] = true
			if p.kind != w.kind || p.drop != w.drop || p.pass != w.pass {
				t.Fatalf("got kind %d drop %v pass %v; want kind %d drop %v pass %v", p.kind, p.drop, p.pass, w.kind, w.drop, w.pass)
			}
			if p.kind == kindFlow && (k.SrcPort == 0 || k.Proto == 0) {
				t.Fatalf("flow key not filled: %+v", k)
			}
		})
	}
	for w := range want {
		if !seen[w] {
			t.Errorf("no fixture exercises %q", w)
		}
	}
}

// TestMalformedThroughPipeline sends every fixture at a running dataplane:
// each is counted once under a verdict, nothing panics, and valid traffic
// still flows afterwards.
func TestMalformedThroughPipeline(t *testing.T) {
	l := newLab(t, labConfig(ModeNAT, 6), Options{})
	fx := pt.Fixtures()
	for _, f := range fx {
		l.run(f.Frame)
	}
	s := l.dp.Stats()
	if s.RX != uint64(len(fx)) || s.TX+s.Pass+s.Drop != s.RX {
		t.Fatalf("rx %d tx %d pass %d drop %d: verdicts do not add up", s.RX, s.TX, s.Pass, s.Drop)
	}
	var reasons uint64
	for _, n := range s.Drops {
		reasons += n
	}
	if reasons != s.Drop {
		t.Fatalf("drops %d but reasons sum to %d", s.Drop, reasons)
	}
	l.one(pt.TCP4(clientEP(60000), vipEP(), pt.FlagSYN, nil))
}
