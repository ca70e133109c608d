package dataplane

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/culvert-lb/culvert/dataplane/sched"
	"github.com/culvert-lb/culvert/internal/header"
	pt "github.com/culvert-lb/culvert/internal/packettest"
)

// rangeConfig is labConfig (nat, TCP port 80 to backends on 8080) plus a
// ranged service on the same VIP, TCP 8000-8009, whose pool is the same
// servers without a port (backend IDs 3..5): port-preserving.
func rangeConfig() *Config {
	c := labConfig(ModeNAT, header.ProtoTCP)
	for i := range beAddrs {
		c.Backends = append(c.Backends, Backend{Addr: a4(beAddrs[i]), Weight: 1, MAC: beMACs[i]})
	}
	c.Services = append(c.Services, Service{VIP: a4(vipAddr), Proto: header.ProtoTCP, Port: 8000, PortEnd: 8009,
		Mode: ModeNAT, Scheduler: sched.KindMaglev, Backends: []uint32{3, 4, 5}})
	return c
}

func vipPortEP(port uint16) pt.Endpoint {
	return pt.Endpoint{MAC: selfMAC, Addr: netip.AddrPortFrom(vipAddr, port)}
}

// TestPortRangeNAT: flows to any port of the range are forwarded to the
// same port on the backend, and replies come back from it; the port after
// the range, and the single-port service, are unaffected.
func TestPortRangeNAT(t *testing.T) {
	l := newLab(t, rangeConfig(), Options{})
	for i, dport := range []uint16{8000, 8003, 8009} {
		t.Run(vipPortEP(dport).Addr.String(), func(t *testing.T) {
			cl := clientEP(uint16(41000 + i))
			out := l.one(pt.TCP4(cl, vipPortEP(dport), pt.FlagSYN, nil, pt.WithSeq(7)))
			b := backendOf(t, out)
			sport := pt.Decode(out).TCP().SrcPort
			pt.Check(t, out, pt.IPv4(pt.Src(localAddr4), pt.Dst(beAddrs[b]), pt.ValidIPv4Checksum()),
				pt.TCP(pt.DstPort(dport), pt.TCPFlagsAre(pt.FlagSYN), pt.Seq(7), pt.ValidL4Checksum()))
			k := keyOf(cl.Addr, header.ProtoTCP)
			k.DstPort = dport
			if ref := l.dp.Table().Lookup(&k); ref.E == nil || ref.E.Flow().Service != 1 || ref.E.Flow().Reply.SrcPort != dport {
				t.Fatalf("flow to %d not tracked under the ranged service", dport)
			}
			be := pt.Endpoint{MAC: beMACs[b], Addr: netip.AddrPortFrom(beAddrs[b], dport)}
			loc := pt.Endpoint{MAC: selfMAC, Addr: netip.AddrPortFrom(localAddr4, uint16(sport))}
			out = l.one(pt.TCP4(be, loc, pt.FlagSYN|pt.FlagACK, nil, pt.WithSeq(900), pt.WithAck(8)))
			pt.Check(t, out, pt.EthDst(gwMAC), pt.IPv4(pt.Src(vipAddr), pt.Dst(clientAddr), pt.ValidIPv4Checksum()),
				pt.TCP(pt.SrcPort(dport), pt.DstPort(cl.Addr.Port()), pt.TCPFlagsAre(pt.FlagSYN|pt.FlagACK), pt.ValidL4Checksum()))
		})
	}
	t.Run("after the range", func(t *testing.T) {
		// The VIP is ours, so a port no service owns drops rather than
		// reaching the kernel.
		l.dropped(pt.TCP4(clientEP(42000), vipPortEP(8010), pt.FlagSYN, nil), DropNoFlow)
		l.dropped(pt.TCP4(clientEP(42001), vipPortEP(7999), pt.FlagSYN, nil), DropNoFlow)
		l.dropped(pt.UDP4(clientEP(42002), vipPortEP(8003), []byte("x")), DropNoFlow)
	})
	t.Run("single port still exact", func(t *testing.T) {
		out := l.one(pt.TCP4(clientEP(42100), vipEP(), pt.FlagSYN, nil))
		pt.Check(t, out, pt.TCP(pt.DstPort(backendPort), pt.ValidL4Checksum()))
	})
}

// TestPortRangeFixedBackendPort: a nat backend with a port receives every
// port of the range on that port.
func TestPortRangeFixedBackendPort(t *testing.T) {
	c := rangeConfig()
	c.Services[1].Backends = []uint32{0, 1, 2} // the 8080 backends
	l := newLab(t, c, Options{})
	out := l.one(pt.TCP4(clientEP(43000), vipPortEP(8005), pt.FlagSYN, nil))
	pt.Check(t, out, pt.TCP(pt.DstPort(backendPort), pt.ValidL4Checksum()))
}

func TestValidatePortRanges(t *testing.T) {
	tests := []struct {
		name   string
		change func(*Config)
		want   string // "" = valid
	}{
		{"range", func(*Config) {}, ""},
		{"disjoint range", func(c *Config) {
			s := c.Services[1]
			s.Port, s.PortEnd = 8010, 8020
			c.Services = append(c.Services, s)
		}, ""},
		{"overlapping range", func(c *Config) {
			s := c.Services[1]
			s.Port, s.PortEnd = 8009, 8020
			c.Services = append(c.Services, s)
		}, "services[2]: ports overlap services[1]"},
		{"single port inside a range", func(c *Config) {
			s := c.Services[1]
			s.Port, s.PortEnd = 8004, 0
			c.Services = append(c.Services, s)
		}, "services[2]: ports overlap services[1]"},
		{"overlap past a short range", func(c *Config) {
			// 8000-8009, then 8001-8002 inside it, then 8005 inside the
			// first but after the second: both are reported against the
			// range that reaches furthest.
			s := c.Services[1]
			s.Port, s.PortEnd = 8001, 8002
			t := s
			t.Port, t.PortEnd = 8005, 0
			c.Services = append(c.Services, s, t)
		}, "services[3]: ports overlap services[1]"},
		{"range over a single port", func(c *Config) { c.Services[1].Port = 80 }, "services[1]: ports overlap services[0]"},
		{"same single port", func(c *Config) { c.Services = append(c.Services, c.Services[0]) }, "services[2]: same VIP, protocol and port as services[0]"},
		{"removed does not overlap", func(c *Config) {
			s := c.Services[1]
			s.Removed = true
			c.Services = append(c.Services, s)
		}, ""},
		{"other protocol", func(c *Config) {
			s := c.Services[1]
			s.Proto = header.ProtoUDP
			c.Services = append(c.Services, s)
		}, ""},
		{"end below port", func(c *Config) { c.Services[1].PortEnd = 7000 }, "services[1]: port end 7000 is below port 8000"},
		{"dsr range with backend port", func(c *Config) {
			c.Services[1].Mode = ModeDSR
			c.Backends[3].Port = 8000
		}, "dsr mode cannot change the port"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := rangeConfig()
			tt.change(c)
			err := c.Validate()
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
				t.Fatalf("error %v, want it to contain %q", err, tt.want)
			}
		})
	}
}

// TestPortRangeLookupDoesNotAllocate: new flows into a range, and misses
// past it, allocate nothing.
func TestPortRangeLookupDoesNotAllocate(t *testing.T) {
	l := newLab(t, rangeConfig(), Options{MaxFlows: 1 << 14})
	p := uint16(10000)
	syn := pt.TCP4(clientEP(p), vipPortEP(8007), pt.FlagSYN, nil)
	miss := pt.TCP4(clientEP(p), vipPortEP(8010), pt.FlagSYN, nil)
	allocs := testing.AllocsPerRun(100, func() {
		header.TCP(syn[34:]).SetSrcPort(p)
		p++
		l.q.Inject(syn)
		l.q.Inject(miss)
		l.w.Poll()
		l.q.DiscardTX()
	})
	if allocs != 0 {
		t.Errorf("Poll allocates %.1f times per batch", allocs)
	}
	if s := l.dp.Stats(); s.Drops[DropNoFlow] == 0 || s.Drop != s.Drops[DropNoFlow] {
		t.Errorf("drops %v: want only the misses", s.Drops)
	}
}

func BenchmarkPortRangeLookup(b *testing.B) {
	c := rangeConfig()
	for i := range 7 { // a VIP with eight ranges; the last is hit
		s := c.Services[1]
		s.Port, s.PortEnd = uint16(9000+100*i), uint16(9000+100*i+9)
		c.Services = append(c.Services, s)
	}
	l := newLab(b, c, Options{})
	comp := l.dp.cfg.Load()
	vip := a4(vipAddr)
	b.ReportAllocs()
	for b.Loop() {
		if _, ok := comp.lookup(vip, header.ProtoTCP, 9605); !ok {
			b.Fatal("miss")
		}
	}
}
