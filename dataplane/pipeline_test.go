package dataplane

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/conntrack"
	"github.com/culvert-lb/culvert/internal/header"
	pt "github.com/culvert-lb/culvert/internal/packettest"
	"github.com/culvert-lb/culvert/nat"
)

// TestNATTCPLifecycle follows one full-NAT TCP connection from SYN to
// expiry: every rewritten field, every checksum, the table states and their
// timeouts, and the SNAT port's return.
func TestNATTCPLifecycle(t *testing.T) {
	l := newLab(t, labConfig(ModeNAT, header.ProtoTCP), Options{})
	cl := clientEP(40000)
	k := keyOf(cl.Addr, header.ProtoTCP)

	// SYN: client -> VIP becomes local:port -> backend:8080.
	out := l.one(pt.TCP4(cl, vipEP(), pt.FlagSYN, nil, pt.WithSeq(100), pt.WithTTL(64), pt.WithDF()))
	b := backendOf(t, out)
	p := pt.Decode(out)
	sport := p.TCP().SrcPort
	pt.Check(t, out,
		pt.EthSrc(selfMAC), pt.EthDst(beMACs[b]),
		pt.IPv4(pt.Src(localAddr4), pt.Dst(beAddrs[b]), pt.TTL(63), pt.DF(true), pt.ValidIPv4Checksum(), pt.TotalLenMatches()),
		pt.TCP(pt.DstPort(backendPort), pt.TCPFlagsAre(pt.FlagSYN), pt.Seq(100), pt.ValidL4Checksum()))
	if sport < 1024 {
		t.Fatalf("SNAT port %d below the range", sport)
	}
	if st := l.state(k); st != conntrack.StateSynSent {
		t.Fatalf("after SYN state %v, want SynSent", st)
	}
	be := pt.Endpoint{MAC: beMACs[b], Addr: netip.AddrPortFrom(beAddrs[b], backendPort)}
	loc := pt.Endpoint{MAC: selfMAC, Addr: netip.AddrPortFrom(localAddr4, uint16(sport))}

	// SYN-ACK: backend -> local:port becomes VIP:80 -> client.
	out = l.one(pt.TCP4(be, loc, pt.FlagSYN|pt.FlagACK, nil, pt.WithSeq(900), pt.WithAck(101)))
	pt.Check(t, out,
		pt.EthSrc(selfMAC), pt.EthDst(gwMAC),
		pt.IPv4(pt.Src(vipAddr), pt.Dst(clientAddr), pt.ValidIPv4Checksum()),
		pt.TCP(pt.SrcPort(vipPort), pt.DstPort(40000), pt.TCPFlagsAre(pt.FlagSYN|pt.FlagACK), pt.Seq(900), pt.Ack(101), pt.ValidL4Checksum()))
	if st := l.state(k); st != conntrack.StateSynRecv {
		t.Fatalf("after SYN-ACK state %v, want SynRecv", st)
	}

	// ACK with data, both ways.
	req := []byte("GET / HTTP/1.1\r\nHost: vip\r\n\r\n")
	out = l.one(pt.TCP4(cl, vipEP(), pt.FlagACK|pt.FlagPSH, req, pt.WithSeq(101), pt.WithAck(901)))
	pt.Check(t, out, pt.IPv4(pt.Src(localAddr4), pt.Dst(beAddrs[b])),
		pt.TCP(pt.SrcPort(uint16(sport)), pt.DstPort(backendPort), pt.Payload(req), pt.ValidL4Checksum()))
	if st := l.state(k); st != conntrack.StateEstablished {
		t.Fatalf("after ACK state %v, want Established", st)
	}
	resp := bytes.Repeat([]byte("x"), 1200)
	out = l.one(pt.TCP4(be, loc, pt.FlagACK|pt.FlagPSH, resp, pt.WithSeq(901), pt.WithAck(101+uint32(len(req)))))
	pt.Check(t, out, pt.IPv4(pt.Src(vipAddr), pt.Dst(clientAddr), pt.ValidIPv4Checksum()),
		pt.TCP(pt.SrcPort(vipPort), pt.DstPort(40000), pt.Payload(resp), pt.ValidL4Checksum()))

	// Close: FIN from the client, FIN from the backend, last ACK.
	l.one(pt.TCP4(cl, vipEP(), pt.FlagFIN|pt.FlagACK, nil))
	if st := l.state(k); st != conntrack.StateFinWait {
		t.Fatalf("after client FIN state %v, want FinWait", st)
	}
	l.one(pt.TCP4(be, loc, pt.FlagFIN|pt.FlagACK, nil))
	if st := l.state(k); st != conntrack.StateTimeWait {
		t.Fatalf("after both FINs state %v, want TimeWait", st)
	}
	l.one(pt.TCP4(cl, vipEP(), pt.FlagACK, nil))

	// Expiry: not before the TIME_WAIT timeout, gone after it.
	tw := conntrack.DefaultTimeouts().TimeWait
	l.clk.Advance(tw - 2*time.Second)
	l.dp.Sweep(1 << 20)
	if l.state(k) != conntrack.StateTimeWait {
		t.Fatalf("flow expired before its TIME_WAIT timeout")
	}
	l.clk.Advance(3 * time.Second)
	l.dp.Sweep(1 << 20)
	if st := l.state(k); st != 0 {
		t.Fatalf("flow still %v after its timeout", st)
	}
	if n := l.dp.Active().Load(uint32(b)); n != 0 {
		t.Fatalf("backend %d still counts %d active flows", b, n)
	}
	// The reply tuple is gone too: a late backend packet is dropped.
	l.dropped(pt.TCP4(be, loc, pt.FlagACK, nil), DropNoFlow)
}

// TestNATPortQuarantine checks that a released SNAT port is not handed out
// again for the quarantine, using a pool of one port.
func TestNATPortQuarantine(t *testing.T) {
	l := newLab(t, labConfig(ModeNAT, header.ProtoUDP), Options{PortLo: 5000, PortHi: 5000})
	out := l.one(pt.UDP4(clientEP(1), vipEP(), []byte("a")))
	if port := pt.Decode(out).UDP().SrcPort; port != 5000 {
		t.Fatalf("SNAT port %d, want 5000", port)
	}
	l.dropped(pt.UDP4(clientEP(2), vipEP(), []byte("b")), DropPortsExhausted)

	l.clk.Advance(conntrack.DefaultTimeouts().UDPUnreplied + time.Second)
	if l.dp.Sweep(1<<20) != 1 {
		t.Fatal("sweep did not expire the flow")
	}
	// Released, but quarantined for 60 s.
	l.clk.Advance(59 * time.Second)
	l.dropped(pt.UDP4(clientEP(3), vipEP(), []byte("c")), DropPortsExhausted)
	l.clk.Advance(2 * time.Second)
	out = l.one(pt.UDP4(clientEP(4), vipEP(), []byte("d")))
	if port := pt.Decode(out).UDP().SrcPort; port != 5000 {
		t.Fatalf("SNAT port %d after quarantine, want 5000", port)
	}
}

func TestNATUDP(t *testing.T) {
	l := newLab(t, labConfig(ModeNAT, header.ProtoUDP), Options{})
	cl := clientEP(5353)
	k := keyOf(cl.Addr, header.ProtoUDP)
	out := l.one(pt.UDP4(cl, vipEP(), []byte("ping")))
	b := backendOf(t, out)
	sport := pt.Decode(out).UDP().SrcPort
	pt.Check(t, out, pt.IPv4(pt.Src(localAddr4), pt.Dst(beAddrs[b]), pt.ValidIPv4Checksum()),
		pt.UDP(pt.SrcPort(uint16(sport)), pt.DstPort(backendPort), pt.Payload([]byte("ping")), pt.ValidL4Checksum()))
	if st := l.state(k); st != conntrack.StateUDPUnreplied {
		t.Fatalf("state %v, want UDPUnreplied", st)
	}
	be := pt.Endpoint{MAC: beMACs[b], Addr: netip.AddrPortFrom(beAddrs[b], backendPort)}
	loc := pt.Endpoint{MAC: selfMAC, Addr: netip.AddrPortFrom(localAddr4, uint16(sport))}
	out = l.one(pt.UDP4(be, loc, []byte("pong")))
	pt.Check(t, out, pt.EthDst(gwMAC), pt.IPv4(pt.Src(vipAddr), pt.Dst(clientAddr), pt.ValidIPv4Checksum()),
		pt.UDP(pt.SrcPort(vipPort), pt.DstPort(5353), pt.Payload([]byte("pong")), pt.ValidL4Checksum()))
	if st := l.state(k); st != conntrack.StateUDP {
		t.Fatalf("state after reply %v, want UDP", st)
	}
	// A zero UDP checksum (none computed) stays zero through the rewrite.
	out = l.one(pt.UDP4(cl, vipEP(), []byte("nock"), pt.WithZeroUDPChecksum()))
	pt.Check(t, out, pt.UDP(pt.ZeroUDPChecksum()), pt.IPv4(pt.ValidIPv4Checksum()))
}

func TestDSR(t *testing.T) {
	for _, proto := range []uint8{header.ProtoTCP, header.ProtoUDP} {
		t.Run(map[uint8]string{6: "tcp", 17: "udp"}[proto], func(t *testing.T) {
			l := newLab(t, labConfig(ModeDSR, proto), Options{})
			cl := clientEP(41000)
			var in []byte
			if proto == header.ProtoTCP {
				in = pt.TCP4(cl, vipEP(), pt.FlagSYN, nil, pt.WithTTL(7))
			} else {
				in = pt.UDP4(cl, vipEP(), []byte("q"), pt.WithTTL(7))
			}
			out := l.one(in)
			b := backendOf(t, out)
			pt.Check(t, out, pt.EthSrc(selfMAC), pt.EthDst(beMACs[b]), pt.ValidChecksums())
			// Only the MACs changed; the IP packet is byte for byte the same, TTL included.
			if !bytes.Equal(out[header.EthernetMinimumSize:], in[header.EthernetMinimumSize:]) {
				t.Fatal("dsr changed the IP packet")
			}
			k := keyOf(cl.Addr, proto)
			if proto == header.ProtoTCP {
				if st := l.state(k); st != conntrack.StateSynSent {
					t.Fatalf("state %v, want SynSent", st)
				}
				// The client's ACK after its SYN establishes a one-way flow.
				out = l.one(pt.TCP4(cl, vipEP(), pt.FlagACK, []byte("data")))
				if backendOf(t, out) != b {
					t.Fatal("second packet went to another backend")
				}
				if st := l.state(k); st != conntrack.StateEstablished {
					t.Fatalf("state %v, want Established", st)
				}
				l.one(pt.TCP4(cl, vipEP(), pt.FlagRST, nil))
				if st := l.state(k); st != conntrack.StateClose {
					t.Fatalf("state after RST %v, want Close", st)
				}
			} else if st := l.state(k); st != conntrack.StateUDP {
				t.Fatalf("state %v, want UDP", st)
			}
		})
	}
}

// TestDSRMidstream: a dsr flow the table does not know (appliance restart,
// failover) is picked up where Maglev sends it, as established.
func TestDSRMidstream(t *testing.T) {
	l := newLab(t, labConfig(ModeDSR, header.ProtoTCP), Options{})
	cl := clientEP(42000)
	out := l.one(pt.TCP4(cl, vipEP(), pt.FlagACK, []byte("mid")))
	if st := l.state(keyOf(cl.Addr, header.ProtoTCP)); st != conntrack.StateEstablished {
		t.Fatalf("state %v, want Established", st)
	}
	// A second appliance with the same config and another table seed picks
	// the same backend.
	l2 := newLab(t, labConfig(ModeDSR, header.ProtoTCP), Options{Seed: 12345})
	out2 := l2.one(pt.TCP4(cl, vipEP(), pt.FlagACK, []byte("mid")))
	if backendOf(t, out) != backendOf(t, out2) {
		t.Fatal("two appliances with the same config disagree on the backend")
	}
	// An unknown reset creates nothing.
	l.dropped(pt.TCP4(clientEP(42001), vipEP(), pt.FlagRST, nil), DropNoFlow)
}

func TestNATRefusesMidstream(t *testing.T) {
	l := newLab(t, labConfig(ModeNAT, header.ProtoTCP), Options{})
	l.dropped(pt.TCP4(clientEP(43000), vipEP(), pt.FlagACK, []byte("?")), DropNoFlow)
	// A packet to the SNAT address that matches no flow is dropped, not passed.
	loc := pt.Endpoint{MAC: selfMAC, Addr: netip.AddrPortFrom(localAddr4, 3333)}
	l.dropped(pt.TCP4(pt.Endpoint{MAC: beMACs[0], Addr: netip.AddrPortFrom(beAddrs[0], backendPort)}, loc, pt.FlagACK, nil), DropNoFlow)
}

func TestIPIP(t *testing.T) {
	l := newLab(t, labConfig(ModeIPIP, header.ProtoTCP), Options{})
	cl := clientEP(44000)
	in := pt.TCP4(cl, vipEP(), pt.FlagSYN, nil, pt.WithDF(), pt.WithTTL(50))
	out := l.one(in)
	b := backendOf(t, out)
	pt.Check(t, out, pt.EthSrc(selfMAC), pt.EthDst(beMACs[b]),
		pt.IPIP(pt.Src(encapAddr), pt.Dst(beAddrs[b]), pt.TTL(64), pt.DF(true), pt.ValidIPv4Checksum(), pt.TotalLenMatches(),
			pt.Inner(pt.Src(clientAddr), pt.Dst(vipAddr), pt.TTL(50), pt.ValidIPv4Checksum(),
				pt.TCP(pt.SrcPort(44000), pt.DstPort(vipPort), pt.TCPFlagsAre(pt.FlagSYN), pt.ValidL4Checksum()))))
	// Decapsulated, it is the original frame's IP packet unchanged.
	dec, ok := nat.DecapIPIP(append([]byte(nil), out...))
	if !ok || !bytes.Equal(pt.IPPacket(dec), pt.IPPacket(in)) {
		t.Fatal("decapsulated packet differs from the original")
	}
}

// TestIPIPTooBig: a packet that does not fit the link once encapsulated is
// answered with fragmentation-needed (MTU 1480 on a 1500 link) when DF is
// set, and dropped otherwise.
func TestIPIPTooBig(t *testing.T) {
	l := newLab(t, labConfig(ModeIPIP, header.ProtoTCP), Options{})
	cl := clientEP(45000)
	l.one(pt.TCP4(cl, vipEP(), pt.FlagSYN, nil, pt.WithDF()))
	big := pt.TCP4(cl, vipEP(), pt.FlagACK, nil, pt.WithDF(), pt.WithPayloadLen(1500-40))
	out := l.one(big)
	pt.Check(t, out, pt.EthDst(gwMAC), pt.EthSrc(selfMAC),
		pt.IPv4(pt.Src(vipAddr), pt.Dst(clientAddr), pt.Proto(header.ProtoICMP), pt.ValidIPv4Checksum(), pt.TotalLenMatches(),
			pt.ICMPv4(pt.ICMPType(3), pt.ICMPCode(4), pt.NextHopMTU(1480), pt.ValidICMPChecksum(),
				pt.Quoted(pt.Src(clientAddr), pt.Dst(vipAddr), pt.TCP(pt.SrcPort(45000), pt.DstPort(vipPort))))))
	if l.dp.Stats().FragNeeded != 1 {
		t.Fatal("FragNeeded not counted")
	}
	// 1480 bytes fit exactly.
	fits := pt.TCP4(cl, vipEP(), pt.FlagACK, nil, pt.WithDF(), pt.WithPayloadLen(1480-40))
	out = l.one(fits)
	if len(out) != 14+1500 {
		t.Fatalf("encapsulated frame is %d bytes, want 1514", len(out))
	}
	noDF := pt.UDP4(cl, vipEP(), nil, pt.WithPayloadLen(1500-28))
	l2 := newLab(t, labConfig(ModeIPIP, header.ProtoUDP), Options{})
	l2.dropped(noDF, DropTooBig)
}

// TestICMPErrorsFollowFlows: an ICMP error about a tracked flow goes to the
// host that owns the flow, translated in nat mode.
func TestICMPErrorsFollowFlows(t *testing.T) {
	t.Run("nat", func(t *testing.T) {
		l := newLab(t, labConfig(ModeNAT, header.ProtoTCP), Options{})
		cl := clientEP(46000)
		out := l.one(pt.TCP4(cl, vipEP(), pt.FlagSYN, nil))
		b := backendOf(t, out)
		sport := uint16(pt.Decode(out).TCP().SrcPort)

		// A router on the client side cannot pass VIP -> client at 1500 and
		// tells the VIP; the backend, who sent it as backend -> local, must hear.
		sent := pt.TCP4(vipEP(), cl, pt.FlagACK, bytes.Repeat([]byte{1}, 1400))
		router := pt.Endpoint{MAC: gwMAC, Addr: netip.AddrPortFrom(routerAddr, 0)}
		out = l.one(pt.ICMP4Error(router, vipEP(), 3, 4, 1400, pt.Quote(sent, 8)))
		pt.Check(t, out, pt.EthDst(beMACs[b]),
			pt.IPv4(pt.Src(localAddr4), pt.Dst(beAddrs[b]), pt.ValidIPv4Checksum(),
				pt.ICMPv4(pt.ICMPType(3), pt.ICMPCode(4), pt.NextHopMTU(1400), pt.ValidICMPChecksum(),
					pt.Quoted(pt.Src(beAddrs[b]), pt.Dst(localAddr4), pt.ValidIPv4Checksum(),
						pt.TCP(pt.SrcPort(backendPort), pt.DstPort(sport))))))

		// The other way: a router on the backend side complains to the SNAT
		// address about local -> backend; the client must hear about client -> VIP.
		toBE := pt.TCP4(pt.Endpoint{MAC: selfMAC, Addr: netip.AddrPortFrom(localAddr4, sport)},
			pt.Endpoint{MAC: beMACs[b], Addr: netip.AddrPortFrom(beAddrs[b], backendPort)}, pt.FlagACK, []byte("hello"))
		beRouter := pt.Endpoint{MAC: beMACs[b], Addr: netip.AddrPortFrom(netip.MustParseAddr("198.18.3.254"), 0)}
		loc := pt.Endpoint{MAC: selfMAC, Addr: netip.AddrPortFrom(localAddr4, 0)}
		out = l.one(pt.ICMP4Error(beRouter, loc, 3, 1, 0, pt.Quote(toBE, 64)))
		pt.Check(t, out, pt.EthDst(gwMAC),
			pt.IPv4(pt.Src(vipAddr), pt.Dst(clientAddr), pt.ValidIPv4Checksum(),
				pt.ICMPv4(pt.ICMPType(3), pt.ICMPCode(1), pt.ValidICMPChecksum(),
					pt.Quoted(pt.Src(clientAddr), pt.Dst(vipAddr), pt.ValidIPv4Checksum(),
						pt.TCP(pt.SrcPort(46000), pt.DstPort(vipPort), pt.ValidL4Checksum())))))
		if l.dp.Stats().ICMPErrors != 2 {
			t.Fatalf("ICMPErrors = %d, want 2", l.dp.Stats().ICMPErrors)
		}
	})
	t.Run("dsr", func(t *testing.T) {
		l := newLab(t, labConfig(ModeDSR, header.ProtoTCP), Options{})
		cl := clientEP(47000)
		b := backendOf(t, l.one(pt.TCP4(cl, vipEP(), pt.FlagSYN, nil)))
		sent := pt.TCP4(vipEP(), cl, pt.FlagACK, bytes.Repeat([]byte{1}, 1400))
		router := pt.Endpoint{MAC: gwMAC, Addr: netip.AddrPortFrom(routerAddr, 0)}
		in := pt.ICMP4Error(router, vipEP(), 3, 4, 1400, pt.Quote(sent, 8))
		out := l.one(in)
		pt.Check(t, out, pt.EthDst(beMACs[b]))
		if !bytes.Equal(out[14:], in[14:]) {
			t.Fatal("dsr changed the ICMP error")
		}
	})
	t.Run("unknown flow", func(t *testing.T) {
		l := newLab(t, labConfig(ModeNAT, header.ProtoTCP), Options{})
		sent := pt.TCP4(vipEP(), clientEP(1), pt.FlagACK, nil)
		router := pt.Endpoint{MAC: gwMAC, Addr: netip.AddrPortFrom(routerAddr, 0)}
		l.dropped(pt.ICMP4Error(router, vipEP(), 3, 4, 1400, pt.Quote(sent, 8)), DropNoFlow)
	})
}

func TestARPAndEchoForVIP(t *testing.T) {
	l := newLab(t, labConfig(ModeDSR, header.ProtoTCP), Options{})
	out := l.one(pt.ARPRequest(gwMAC, clientAddr, vipAddr))
	pt.Check(t, out, pt.EthDst(gwMAC), pt.EthSrc(selfMAC),
		pt.ARP(pt.ARPOp(header.ARPReply), pt.ARPSender(selfMAC, vipAddr), pt.ARPTarget(gwMAC, clientAddr)))
	l.passed(pt.ARPRequest(gwMAC, clientAddr, netip.MustParseAddr("198.18.0.1")), PassARP)
	// A local (SNAT) address is answered too: an HA pair moves it.
	out = l.one(pt.ARPRequest(gwMAC, clientAddr, localAddr4))
	pt.Check(t, out, pt.EthDst(gwMAC), pt.EthSrc(selfMAC),
		pt.ARP(pt.ARPOp(header.ARPReply), pt.ARPSender(selfMAC, localAddr4), pt.ARPTarget(gwMAC, clientAddr)))

	cl := pt.Endpoint{MAC: gwMAC, Addr: netip.AddrPortFrom(clientAddr, 0)}
	out = l.one(pt.ICMP4Echo(cl, vipEP(), 7, 9, []byte("are you there")))
	pt.Check(t, out, pt.EthDst(gwMAC), pt.EthSrc(selfMAC),
		pt.IPv4(pt.Src(vipAddr), pt.Dst(clientAddr), pt.ValidIPv4Checksum(), pt.TTL(64),
			pt.ICMPv4(pt.ICMPType(0), pt.EchoID(7), pt.EchoSeq(9), pt.Payload([]byte("are you there")), pt.ValidICMPChecksum())))
	other := pt.Endpoint{MAC: selfMAC, Addr: netip.AddrPortFrom(netip.MustParseAddr("198.18.0.1"), 0)}
	l.passed(pt.ICMP4Echo(cl, other, 1, 1, nil), PassICMP)

	// A backup appliance (AnswerVIPs off) stays silent.
	cfg := labConfig(ModeDSR, header.ProtoTCP)
	cfg.AnswerVIPs = false
	quiet := newLab(t, cfg, Options{})
	quiet.passed(pt.ARPRequest(gwMAC, clientAddr, vipAddr), PassARP)
}

func TestPassNotOwned(t *testing.T) {
	l := newLab(t, labConfig(ModeNAT, header.ProtoTCP), Options{})
	host := pt.Endpoint{MAC: selfMAC, Addr: netip.MustParseAddrPort("198.18.0.1:22")}
	l.passed(pt.TCP4(clientEP(50000), host, pt.FlagSYN, nil), PassNotOwned)
	l.passed(pt.TCP6(pt.Endpoint{MAC: gwMAC, Addr: netip.MustParseAddrPort("[2001:2::1]:1000")},
		pt.Endpoint{MAC: selfMAC, Addr: netip.MustParseAddrPort("[2001:2::2]:80")}, pt.FlagSYN, nil), PassNotIPv4)
	// The VIP on a port with no service: the kernel does not have the VIP.
	vipOther := pt.Endpoint{MAC: selfMAC, Addr: netip.AddrPortFrom(vipAddr, 443)}
	l.dropped(pt.TCP4(clientEP(50001), vipOther, pt.FlagSYN, nil), DropNoFlow)
}

func TestTableFull(t *testing.T) {
	l := newLab(t, labConfig(ModeDSR, header.ProtoUDP), Options{MaxFlows: 64})
	n := 0
	for p := uint16(1); p <= 200; p++ {
		r := l.run(pt.UDP4(clientEP(p), vipEP(), nil))
		n += len(r.tx)
	}
	s := l.dp.Stats()
	if n == 0 || n > 64 || s.Drops[DropTableFull] != uint64(200-n) {
		t.Fatalf("forwarded %d of 200 with capacity 64; table-full drops %d", n, s.Drops[DropTableFull])
	}
	// Established flows keep working while new ones are refused.
	l.one(pt.UDP4(clientEP(1), vipEP(), nil))
}

func TestPersistence(t *testing.T) {
	cfg := labConfig(ModeDSR, header.ProtoTCP)
	cfg.Services[0].Persistence = 30 * time.Second
	l := newLab(t, cfg, Options{})
	first := -1
	for p := uint16(1000); p < 1040; p++ {
		b := backendOf(t, l.one(pt.TCP4(clientEP(p), vipEP(), pt.FlagSYN, nil)))
		if first < 0 {
			first = b
		} else if b != first {
			t.Fatalf("flow from port %d went to backend %d, persistence says %d", p, b, first)
		}
	}
	// Without persistence 40 flows would not all land on one of three backends.
	l2 := newLab(t, labConfig(ModeDSR, header.ProtoTCP), Options{})
	seen := map[int]bool{}
	for p := uint16(1000); p < 1040; p++ {
		seen[backendOf(t, l2.one(pt.TCP4(clientEP(p), vipEP(), pt.FlagSYN, nil)))] = true
	}
	if len(seen) < 2 {
		t.Fatal("without persistence every flow hit one backend: the test above proves nothing")
	}
}

// TestPersistenceAfterDrain: when a client's sticky backend drains, its
// next flows stick to one new backend (the old template is replaced, not
// kept alive by every new flow).
func TestPersistenceAfterDrain(t *testing.T) {
	cfg := labConfig(ModeDSR, header.ProtoTCP)
	cfg.Services[0].Persistence = 30 * time.Second
	l := newLab(t, cfg, Options{})
	old := backendOf(t, l.one(pt.TCP4(clientEP(1000), vipEP(), pt.FlagSYN, nil)))
	drained := *cfg
	drained.Backends = append([]Backend(nil), cfg.Backends...)
	drained.Backends[old].Weight = 0
	if err := l.dp.Apply(&drained); err != nil {
		t.Fatal(err)
	}
	exists := l.dp.Table().Stats().Exists
	seen := map[int]bool{}
	for p := uint16(1001); p < 1041; p++ {
		seen[backendOf(t, l.one(pt.TCP4(clientEP(p), vipEP(), pt.FlagSYN, nil)))] = true
	}
	if len(seen) != 1 || seen[old] {
		t.Errorf("after draining backend %d the client's flows went to %v, want one other backend", old, seen)
	}
	if n := l.dp.Table().Stats().Exists - exists; n != 0 {
		t.Errorf("%d inserts found the stale template", n)
	}
}

func TestDrainAndRemovedBackend(t *testing.T) {
	cfg := labConfig(ModeNAT, header.ProtoTCP)
	l := newLab(t, cfg, Options{})
	cl := clientEP(51000)
	b := backendOf(t, l.one(pt.TCP4(cl, vipEP(), pt.FlagSYN, nil)))

	// Drain b: its flow continues, new flows go elsewhere.
	drained := labConfig(ModeNAT, header.ProtoTCP)
	drained.Backends[b].Weight = 0
	if err := l.dp.Apply(drained); err != nil {
		t.Fatal(err)
	}
	if got := backendOf(t, l.one(pt.TCP4(cl, vipEP(), pt.FlagACK, nil))); got != b {
		t.Fatalf("existing flow moved from %d to %d on drain", b, got)
	}
	for p := uint16(1); p < 50; p++ {
		if backendOf(t, l.one(pt.TCP4(clientEP(p), vipEP(), pt.FlagSYN, nil))) == b {
			t.Fatal("drained backend got a new flow")
		}
	}
	// Remove b: its flows drop, counted.
	removed := labConfig(ModeNAT, header.ProtoTCP)
	removed.Backends[b].Removed = true
	removed.Services[0].Backends = nil
	for i := range removed.Backends {
		if i != b {
			removed.Services[0].Backends = append(removed.Services[0].Backends, uint32(i))
		}
	}
	if err := l.dp.Apply(removed); err != nil {
		t.Fatal(err)
	}
	l.dropped(pt.TCP4(cl, vipEP(), pt.FlagACK, nil), DropBackendGone)
}

func TestApplyRefusesBadConfig(t *testing.T) {
	l := newLab(t, labConfig(ModeNAT, header.ProtoTCP), Options{})
	bad := labConfig(ModeNAT, header.ProtoTCP)
	bad.Services = append(bad.Services, bad.Services[0])           // duplicate
	bad.Services[0].Backends = append(bad.Services[0].Backends, 9) // no such backend
	bad.MaglevSize = 65536                                         // not prime
	err := l.dp.Apply(bad)
	if err == nil {
		t.Fatal("bad config applied")
	}
	for _, want := range []string{"services[1]: same VIP", "services[0].backends[3]: no backend with id 9", "maglev size: 65536 is not prime"} {
		if !bytes.Contains([]byte(err.Error()), []byte(want)) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	// The running config still forwards.
	l.one(pt.TCP4(clientEP(52000), vipEP(), pt.FlagSYN, nil))
}

func TestTTLExceededInNAT(t *testing.T) {
	l := newLab(t, labConfig(ModeNAT, header.ProtoTCP), Options{})
	l.dropped(pt.TCP4(clientEP(53000), vipEP(), pt.FlagSYN, nil, pt.WithTTL(1)), DropTTLExceeded)
}

func TestNoNeighbor(t *testing.T) {
	cfg := labConfig(ModeDSR, header.ProtoUDP)
	for i := range cfg.Backends {
		cfg.Backends[i].MAC = header.MAC{}
	}
	l := newLab(t, cfg, Options{})
	l.dropped(pt.UDP4(clientEP(1), vipEP(), nil), DropNoNeighbor)
}

func TestTXFull(t *testing.T) {
	l := newLab(t, labConfig(ModeDSR, header.ProtoUDP), Options{})
	l.q.SetTXLimit(1)
	r := l.run(pt.UDP4(clientEP(1), vipEP(), nil), pt.UDP4(clientEP(2), vipEP(), nil), pt.UDP4(clientEP(3), vipEP(), nil))
	if len(r.tx) != 1 || r.dropped != 2 || l.dp.Stats().Drops[DropTXFull] != 2 {
		t.Fatalf("tx=%d dropped=%d txfull=%d", len(r.tx), r.dropped, l.dp.Stats().Drops[DropTXFull])
	}
	if l.q.Free() != 256 {
		t.Fatalf("a frame leaked: %d free", l.q.Free())
	}
}

// TestExpireForeignFlow: a full-NAT flow whose local-address and worker
// indexes this dataplane never issued (an import from an HA peer) expires
// without touching any port pool.
func TestExpireForeignFlow(t *testing.T) {
	l := newLab(t, labConfig(ModeNAT, header.ProtoTCP), Options{})
	f := conntrack.Flow[conntrack.Key4]{
		Orig:     keyOf(netip.MustParseAddrPort("198.19.0.9:1234"), header.ProtoTCP),
		Reply:    conntrack.Key4{Src: a4(beAddrs[0]), Dst: [4]byte{198, 18, 2, 99}, SrcPort: backendPort, DstPort: 4000, Proto: header.ProtoTCP},
		HasReply: true, Local: 77, Owner: 9, Backend: 70000,
	}
	if _, err := l.dp.Table().Insert(&f, conntrack.StateEstablished, conntrack.Time(l.clk.Now())); err != nil {
		t.Fatal(err)
	}
	l.clk.Advance(conntrack.DefaultTimeouts().Established + 2*time.Second)
	if n := l.dp.Sweep(1 << 20); n != 1 {
		t.Fatalf("swept %d flows, want 1", n)
	}
}

// TestExpireImportedFlowPortShare: an imported full-NAT flow whose Owner
// is the peer's worker, not the one whose share holds its port here (the
// peer runs another number of workers), gives its port back to the pool
// that holds it when it expires. The port is out in that pool, as after an
// insert that clashed with the imported flow and kept the port out.
func TestExpireImportedFlowPortShare(t *testing.T) {
	l := newLab(t, labConfig(ModeNAT, header.ProtoTCP), Options{Workers: 2})
	la := (*l.dp.locals.Load())[0]
	pool := la.pools[1]
	port, ok := pool.Get(l.clk.Now())
	if !ok {
		t.Fatal("no port in worker 1's share")
	}
	before := pool.Len()
	f := conntrack.Flow[conntrack.Key4]{
		Orig:     keyOf(netip.MustParseAddrPort("198.19.0.9:1234"), header.ProtoTCP),
		Reply:    conntrack.Key4{Src: a4(beAddrs[0]), Dst: la.addr, SrcPort: backendPort, DstPort: port, Proto: header.ProtoTCP},
		HasReply: true, Local: la.idx, Owner: 0, Backend: 0,
	}
	if _, err := l.dp.Table().Insert(&f, conntrack.StateEstablished, conntrack.Time(l.clk.Now())); err != nil {
		t.Fatal(err)
	}
	l.clk.Advance(conntrack.DefaultTimeouts().Established + 2*time.Second)
	if n := l.dp.Sweep(1 << 20); n != 1 {
		t.Fatalf("swept %d flows, want 1", n)
	}
	if got := pool.Len(); got != before+1 {
		t.Fatalf("worker 1's pool has %d ports in after the expiry, want %d: port %d was not given back", got, before+1, port)
	}
	if got := la.pools[0].Len(); got != la.pools[0].Size() {
		t.Fatalf("worker 0's pool has %d of %d ports in: it took a port it never gave", got, la.pools[0].Size())
	}
}
