package nat

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"testing"

	"github.com/culvert-lb/culvert/internal/header"
	pt "github.com/culvert-lb/culvert/internal/packettest"
)

var (
	macA = [6]byte{2, 0, 0, 0, 0, 0xa}
	macB = [6]byte{2, 0, 0, 0, 0, 0xb}
	cli  = pt.Endpoint{MAC: macA, Addr: netip.MustParseAddrPort("198.18.0.10:40000")}
	vip  = pt.Endpoint{MAC: macB, Addr: netip.MustParseAddrPort("198.18.1.1:80")}
	loc  = netip.MustParseAddr("198.18.2.1")
	be   = netip.MustParseAddr("198.18.3.1")
)

func TestRewrite4(t *testing.T) {
	tests := []struct {
		name  string
		frame []byte
		check []pt.Checker
	}{
		{"tcp", pt.TCP4(cli, vip, pt.FlagSYN|pt.FlagACK, []byte("payload"), pt.WithSeq(7)),
			[]pt.Checker{pt.TCP(pt.SrcPort(1025), pt.DstPort(8080), pt.Seq(7), pt.Payload([]byte("payload")))}},
		{"udp", pt.UDP4(cli, vip, []byte("datagram")),
			[]pt.Checker{pt.UDP(pt.SrcPort(1025), pt.DstPort(8080), pt.Payload([]byte("datagram")))}},
		{"udp zero checksum", pt.UDP4(cli, vip, []byte("x"), pt.WithZeroUDPChecksum()),
			[]pt.Checker{pt.UDP(pt.ZeroUDPChecksum())}},
		{"tcp odd payload", pt.TCP4(cli, vip, pt.FlagACK, []byte("odd")), nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := tt.frame
			ip := header.IPv4(f[14:])
			Rewrite4(ip, f[14+ip.HeaderLen():], ip.Protocol(), loc.As4(), be.As4(), 1025, 8080)
			checks := append([]pt.Checker{pt.IPv4(pt.Src(loc), pt.Dst(be), pt.ValidIPv4Checksum())}, tt.check...)
			if tt.name != "udp zero checksum" {
				checks = append(checks, pt.ValidChecksums())
			}
			pt.Check(t, f, checks...)
		})
	}
}

// TestRewritePreservesBadChecksum: a segment whose checksum was wrong stays
// wrong after the rewrite, so the receiver still catches the corruption.
func TestRewritePreservesBadChecksum(t *testing.T) {
	f := pt.TCP4(cli, vip, pt.FlagACK, []byte("corrupt me"))
	f[len(f)-1] ^= 0x55 // corrupt payload after the checksum was computed
	ip := header.IPv4(f[14:])
	Rewrite4(ip, f[34:], header.ProtoTCP, loc.As4(), be.As4(), 1, 2)
	l4 := f[34 : ip.TotalLen()+14]
	s := header.PseudoHeaderChecksum4(header.ProtoTCP, ip.Src(), ip.Dst(), uint16(len(l4)))
	if header.Checksum(l4, uint32(s)) == 0xffff {
		t.Fatal("a corrupt segment's checksum verifies after the rewrite")
	}
}

// unpadded strips Ethernet padding, as the dataplane does before
// encapsulating.
func unpadded(f []byte) []byte { return f[:14+len(pt.IPPacket(f))] }

func TestEncapDecapIPIP(t *testing.T) {
	in := unpadded(pt.TCP4(cli, vip, pt.FlagSYN, nil, pt.WithDF(), pt.WithTTL(9)))
	buf := make([]byte, IPIPOverhead+len(in))
	copy(buf[IPIPOverhead:], in)
	EncapIPIP(buf, loc.As4(), be.As4(), 0)
	SetMACs(header.Ethernet(buf), macB, macA)
	pt.Check(t, buf, pt.EthSrc(macB), pt.EthDst(macA),
		pt.IPIP(pt.Src(loc), pt.Dst(be), pt.TTL(64), pt.DF(true), pt.ValidIPv4Checksum(), pt.TotalLenMatches(),
			pt.Inner(pt.Src(cli.Addr.Addr()), pt.Dst(vip.Addr.Addr()), pt.TTL(9), pt.ValidChecksums())))
	out, ok := DecapIPIP(buf)
	if !ok || !bytes.Equal(out[14:], in[14:]) {
		t.Fatal("decap did not restore the packet")
	}
	noDF := unpadded(pt.UDP4(cli, vip, []byte("x")))
	buf = make([]byte, IPIPOverhead+len(noDF))
	copy(buf[IPIPOverhead:], noDF)
	EncapIPIP(buf, loc.As4(), be.As4(), 0xbeef)
	pt.Check(t, buf, pt.IPIP(pt.DF(false), pt.ID(0xbeef)))
	if _, ok := DecapIPIP(noDF); ok {
		t.Fatal("plain UDP decapsulated")
	}
	if _, ok := DecapIPIP(buf[:40]); ok {
		t.Fatal("truncated frame decapsulated")
	}
}

func TestFragNeeded4(t *testing.T) {
	big := pt.TCP4(cli, vip, pt.FlagACK, nil, pt.WithDF(), pt.WithPayloadLen(1460), pt.WithSeq(77))
	n := FragNeeded4(big, macB, 1480)
	out := big[:n]
	if n != FragNeededSize(20) {
		t.Fatalf("length %d, want %d", n, FragNeededSize(20))
	}
	pt.Check(t, out, pt.EthSrc(macB), pt.EthDst(macA),
		pt.IPv4(pt.Src(vip.Addr.Addr()), pt.Dst(cli.Addr.Addr()), pt.ValidIPv4Checksum(), pt.TotalLenMatches(),
			pt.ICMPv4(pt.ICMPType(3), pt.ICMPCode(4), pt.NextHopMTU(1480), pt.ValidICMPChecksum(),
				pt.Quoted(pt.Src(cli.Addr.Addr()), pt.Dst(vip.Addr.Addr()), pt.TCP(pt.SrcPort(40000), pt.DstPort(80), pt.Seq(77))))))
}

func TestRewriteICMPError4(t *testing.T) {
	sent := pt.UDP4(vip, cli, []byte("reply"))
	router := pt.Endpoint{MAC: macA, Addr: netip.MustParseAddrPort("198.18.0.254:0")}
	f := pt.ICMP4Error(router, vip, 3, 3, 0, pt.Quote(sent, 64))
	ip := header.IPv4(f[14:])
	icmp := header.ICMPv4(f[34 : 14+ip.TotalLen()])
	if !QuotedOK4(icmp) {
		t.Fatal("quote not accepted")
	}
	RewriteICMPError4(ip, icmp, loc.As4(), be.As4(), be.As4(), loc.As4(), 8080, 2000)
	pt.Check(t, f, pt.IPv4(pt.Src(loc), pt.Dst(be), pt.ValidIPv4Checksum(),
		pt.ICMPv4(pt.ValidICMPChecksum(), pt.Quoted(pt.Src(be), pt.Dst(loc), pt.ValidIPv4Checksum(),
			pt.UDP(pt.SrcPort(8080), pt.DstPort(2000), pt.ValidL4Checksum())))))
	short := header.ICMPv4(make([]byte, 8+20+4))
	short[8] = 0x45
	if QuotedOK4(short) {
		t.Fatal("quote of 4 L4 bytes accepted")
	}
}

func TestRewriteNoAllocs(t *testing.T) {
	f := pt.TCP4(cli, vip, pt.FlagACK, []byte("x"))
	ip := header.IPv4(f[14:])
	buf := make([]byte, IPIPOverhead+len(f))
	copy(buf[IPIPOverhead:], f)
	n := testing.AllocsPerRun(100, func() {
		Rewrite4(ip, f[34:], header.ProtoTCP, loc.As4(), be.As4(), 1, 2)
		SetMACs(header.Ethernet(f), macA, macB)
		copy(buf[IPIPOverhead:], f)
		EncapIPIP(buf, loc.As4(), be.As4(), 1)
	})
	if n != 0 {
		t.Fatalf("allocs = %v", n)
	}
}

// FuzzRewrite: for any TCP/UDP payload and any new tuple, the patched
// checksums verify exactly as a full recompute would.
func FuzzRewrite(f *testing.F) {
	f.Add([]byte("hello"), uint32(0xc6120201), uint32(0xc6130301), uint16(1), uint16(2), true, false)
	f.Add([]byte{}, uint32(0), uint32(0xffffffff), uint16(0xffff), uint16(0), false, true)
	f.Fuzz(func(t *testing.T, payload []byte, src, dst uint32, sport, dport uint16, tcp, zero bool) {
		if len(payload) > 1400 {
			return
		}
		var fr []byte
		if tcp {
			fr = pt.TCP4(cli, vip, pt.FlagACK, payload)
		} else if zero {
			fr = pt.UDP4(cli, vip, payload, pt.WithZeroUDPChecksum())
		} else {
			fr = pt.UDP4(cli, vip, payload)
		}
		ip := header.IPv4(fr[14:])
		s := [4]byte{byte(src >> 24), byte(src >> 16), byte(src >> 8), byte(src)}
		d := [4]byte{byte(dst >> 24), byte(dst >> 16), byte(dst >> 8), byte(dst)}
		Rewrite4(ip, fr[34:], ip.Protocol(), s, d, sport, dport)
		if !ip.IsChecksumValid() {
			t.Fatal("IPv4 checksum does not verify")
		}
		l4 := fr[34 : 14+ip.TotalLen()]
		if !tcp && zero {
			if header.UDP(l4).Checksum() != 0 {
				t.Fatal("zero UDP checksum was patched")
			}
			return
		}
		sum := header.PseudoHeaderChecksum4(ip.Protocol(), s, d, uint16(len(l4)))
		if header.Checksum(l4, uint32(sum)) != 0xffff {
			t.Fatal("L4 checksum does not verify after rewrite")
		}
	})
}

// TestRewrite4RandomTuples rewrites random original tuples to random new
// ones (the fuzz target starts from fixed addresses) and checks both
// checksums verify like a full recompute.
func TestRewrite4RandomTuples(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 11))
	a4 := func() netip.Addr {
		return netip.AddrFrom4([4]byte{byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32()), byte(r.Uint32())})
	}
	for i := 0; i < 20000; i++ {
		src := pt.Endpoint{MAC: macA, Addr: netip.AddrPortFrom(a4(), uint16(r.Uint32()))}
		dst := pt.Endpoint{MAC: macB, Addr: netip.AddrPortFrom(a4(), uint16(r.Uint32()))}
		var f []byte
		if i%2 == 0 {
			f = pt.TCP4(src, dst, pt.FlagACK, []byte("payload"), pt.WithTTL(9))
		} else {
			f = pt.UDP4(src, dst, []byte("datagram"))
		}
		ip := header.IPv4(f[14:])
		ns, nd := a4().As4(), a4().As4()
		ttl := ip.TTL()
		if i%3 == 0 {
			Route4(ip, f[34:], ip.Protocol(), ns, nd, uint16(r.Uint32()), uint16(r.Uint32()))
			if ip.TTL() != ttl-1 {
				t.Fatalf("case %d: TTL %d after Route4, want %d", i, ip.TTL(), ttl-1)
			}
		} else {
			Rewrite4(ip, f[34:], ip.Protocol(), ns, nd, uint16(r.Uint32()), uint16(r.Uint32()))
		}
		l4 := f[34 : 14+ip.TotalLen()]
		sum := header.PseudoHeaderChecksum4(ip.Protocol(), ns, nd, uint16(len(l4)))
		if !ip.IsChecksumValid() || header.Checksum(l4, uint32(sum)) != 0xffff {
			t.Fatalf("case %d: checksums do not verify after rewrite", i)
		}
	}
}
