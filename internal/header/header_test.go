package header

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// tcp4 builds an IPv4+TCP packet with valid checksums.
func tcp4(src, dst [4]byte, sport, dport uint16, payload []byte) []byte {
	b := make([]byte, IPv4MinimumSize+TCPMinimumSize+len(payload))
	IPv4(b).Encode(&IPv4Fields{TotalLen: uint16(len(b)), ID: 7, DF: true, TTL: 64, Protocol: ProtoTCP, Src: src, Dst: dst})
	t := TCP(b[IPv4MinimumSize:])
	binary.BigEndian.PutUint16(t[0:], sport)
	binary.BigEndian.PutUint16(t[2:], dport)
	binary.BigEndian.PutUint32(t[4:], 1000)
	t[12] = 5 << 4
	t[13] = TCPFlagACK | TCPFlagPSH
	binary.BigEndian.PutUint16(t[14:], 65535)
	copy(t[TCPMinimumSize:], payload)
	t.SetChecksum(l4Checksum(b))
	return b
}

func udp4(src, dst [4]byte, sport, dport uint16, payload []byte) []byte {
	b := make([]byte, IPv4MinimumSize+UDPMinimumSize+len(payload))
	IPv4(b).Encode(&IPv4Fields{TotalLen: uint16(len(b)), TTL: 64, Protocol: ProtoUDP, Src: src, Dst: dst})
	u := UDP(b[IPv4MinimumSize:])
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[UDPMinimumSize:], payload)
	c := l4Checksum(b)
	if c == 0 {
		c = 0xffff
	}
	u.SetChecksum(c)
	return b
}

// l4Checksum computes from scratch the TCP/UDP checksum of an IPv4 packet,
// with the checksum field taken as zero.
func l4Checksum(pkt []byte) uint16 {
	ip := IPv4(pkt)
	l4 := pkt[ip.HeaderLen():ip.TotalLen()]
	off := tcpChecksum
	if ip.Protocol() == ProtoUDP {
		off = udpChecksum
	}
	s := PseudoHeaderChecksum4(ip.Protocol(), ip.Src(), ip.Dst(), uint16(len(l4)))
	s = Checksum(l4[:off], uint32(s))
	s = Checksum(l4[off+2:], uint32(s))
	return ^s
}

// l4Verifies reports whether the L4 checksum of an IPv4 packet verifies.
func l4Verifies(pkt []byte) bool {
	ip := IPv4(pkt)
	l4 := pkt[ip.HeaderLen():ip.TotalLen()]
	s := PseudoHeaderChecksum4(ip.Protocol(), ip.Src(), ip.Dst(), uint16(len(l4)))
	return Checksum(l4, uint32(s)) == 0xffff
}

func TestChecksumKnownVector(t *testing.T) {
	// RFC 1071 section 3 example: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
	b := []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}
	if got := Checksum(b, 0); got != 0xddf2 {
		t.Fatalf("Checksum = %#x, want 0xddf2", got)
	}
	// Odd length pads on the right.
	if got, want := Checksum([]byte{0x12, 0x34, 0x56}, 0), uint16(0x1234+0x5600); got != want {
		t.Fatalf("odd Checksum = %#x, want %#x", got, want)
	}
}

func TestChecksumLengths(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for n := 0; n < 80; n++ {
		b := make([]byte, n)
		for i := range b {
			b[i] = byte(r.Uint32())
		}
		var want uint32
		for i := 0; i+1 < n; i += 2 {
			want += uint32(b[i])<<8 | uint32(b[i+1])
		}
		if n%2 == 1 {
			want += uint32(b[n-1]) << 8
		}
		for want > 0xffff {
			want = want>>16 + want&0xffff
		}
		if got := Checksum(b, 0); got != uint16(want) {
			t.Fatalf("len %d: got %#x want %#x", n, got, want)
		}
	}
}

func TestIncrementalRewriteMatchesRecompute(t *testing.T) {
	r := rand.New(rand.NewPCG(3, 4))
	addr := func() [4]byte { return [4]byte{198, 18 + byte(r.IntN(2)), byte(r.Uint32()), byte(r.Uint32())} }
	for i := 0; i < 2000; i++ {
		payload := make([]byte, r.IntN(64))
		for j := range payload {
			payload[j] = byte(r.Uint32())
		}
		for _, pkt := range [][]byte{
			tcp4(addr(), addr(), uint16(r.Uint32()), uint16(r.Uint32()), payload),
			udp4(addr(), addr(), uint16(r.Uint32()), uint16(r.Uint32()), payload),
		} {
			ip := IPv4(pkt)
			l4 := pkt[ip.HeaderLen():]
			ns, nd := addr(), addr()
			sp, dp := uint16(r.Uint32()), uint16(r.Uint32())
			os, od := ip.Src(), ip.Dst()
			ip.SetSrc(ns)
			ip.SetDst(nd)
			ip.DecTTL()
			if ip.Protocol() == ProtoTCP {
				tcp := TCP(l4)
				tcp.UpdateChecksumAddr4(os, ns)
				tcp.UpdateChecksumAddr4(od, nd)
				tcp.SetSrcPort(sp)
				tcp.SetDstPort(dp)
			} else {
				udp := UDP(l4)
				udp.UpdateChecksumAddr4(os, ns)
				udp.UpdateChecksumAddr4(od, nd)
				udp.SetSrcPort(sp)
				udp.SetDstPort(dp)
				if udp.Checksum() == 0 {
					t.Fatal("patched UDP checksum became 0")
				}
			}
			if !ip.IsChecksumValid() {
				t.Fatalf("IPv4 header checksum does not verify after rewrite")
			}
			if ip.Checksum() != ip.CalculateChecksum() {
				t.Fatalf("IPv4 checksum %#x, recompute %#x", ip.Checksum(), ip.CalculateChecksum())
			}
			if !l4Verifies(pkt) {
				t.Fatalf("proto %d checksum does not verify after rewrite", ip.Protocol())
			}
		}
	}
}

func TestUDPZeroChecksumStaysZero(t *testing.T) {
	pkt := udp4([4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, 1, 2, []byte("x"))
	u := UDP(pkt[IPv4MinimumSize:])
	u.SetChecksum(0)
	u.SetDstPort(9)
	u.UpdateChecksumAddr4([4]byte{198, 18, 0, 2}, [4]byte{198, 19, 0, 2})
	if u.Checksum() != 0 {
		t.Fatalf("zero UDP checksum was patched to %#x", u.Checksum())
	}
}

func TestIPv4Validate(t *testing.T) {
	good := tcp4([4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, 1, 2, []byte("hello"))
	mod := func(f func(b []byte) []byte) []byte {
		b := append([]byte(nil), good...)
		return f(b)
	}
	tests := []struct {
		name string
		pkt  []byte
		want IPv4Status
	}{
		{"ok", good, IPv4OK},
		{"ok with padding", append(append([]byte(nil), good...), 0, 0, 0), IPv4OK},
		{"truncated", good[:19], IPv4Truncated},
		{"version 6", mod(func(b []byte) []byte { b[0] = 0x65; return b }), IPv4BadVersion},
		{"ihl 4", mod(func(b []byte) []byte { b[0] = 0x44; return b }), IPv4BadIHL},
		{"ihl beyond frame", mod(func(b []byte) []byte { b[0] = 0x4f; return b[:30] }), IPv4Truncated},
		{"total length beyond frame", mod(func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], 1000); return b }), IPv4BadTotalLength},
		{"total length below header", mod(func(b []byte) []byte { binary.BigEndian.PutUint16(b[2:], 10); return b }), IPv4BadTotalLength},
		{"bad checksum", mod(func(b []byte) []byte { b[10] ^= 1; return b }), IPv4BadChecksum},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := IPv4(tt.pkt).Validate(); got != tt.want {
				t.Fatalf("Validate = %d, want %d", got, tt.want)
			}
		})
	}
}

func TestIPv4Fields(t *testing.T) {
	b := make([]byte, IPv4MinimumSize)
	IPv4(b).Encode(&IPv4Fields{TOS: 0x10, TotalLen: 20, ID: 0x1234, DF: true, TTL: 9, Protocol: ProtoIPIP,
		Src: [4]byte{198, 18, 1, 1}, Dst: [4]byte{198, 19, 2, 2}})
	ip := IPv4(b)
	if ip.Version() != 4 || ip.HeaderLen() != 20 || ip.TOS() != 0x10 || ip.ID() != 0x1234 || !ip.DF() ||
		ip.IsFragment() || ip.TTL() != 9 || ip.Protocol() != ProtoIPIP ||
		ip.Src() != [4]byte{198, 18, 1, 1} || ip.Dst() != [4]byte{198, 19, 2, 2} || !ip.IsChecksumValid() {
		t.Fatalf("fields do not round-trip: % x", b)
	}
	binary.BigEndian.PutUint16(b[6:], 0x2000) // MF
	if !ip.IsFragment() || ip.FragmentOffset() != 0 {
		t.Fatal("MF not seen as fragment")
	}
	binary.BigEndian.PutUint16(b[6:], 3)
	if !ip.IsFragment() || ip.FragmentOffset() != 24 {
		t.Fatal("offset not seen as fragment")
	}
}

func TestICMPChecksum(t *testing.T) {
	m := ICMPv4([]byte{ICMPv4Echo, 0, 0, 0, 0, 1, 0, 2, 'p', 'i', 'n', 'g', '!'})
	m.SetChecksum(m.CalculateChecksum())
	if Checksum(m, 0) != 0xffff {
		t.Fatal("ICMP checksum does not verify")
	}
	if m.IsError() {
		t.Fatal("echo reported as error")
	}
}

func TestARPEncode(t *testing.T) {
	b := make(ARP, ARPSize)
	b.Encode(ARPReply, MAC{2, 0, 0, 0, 0, 1}, [4]byte{198, 18, 0, 1}, MAC{2, 0, 0, 0, 0, 2}, [4]byte{198, 18, 0, 2})
	if !b.IsValid() || b.Op() != ARPReply || b.SenderHW() != (MAC{2, 0, 0, 0, 0, 1}) ||
		b.SenderIP() != [4]byte{198, 18, 0, 1} || b.TargetHW() != (MAC{2, 0, 0, 0, 0, 2}) || b.TargetIP() != [4]byte{198, 18, 0, 2} {
		t.Fatalf("ARP round trip: % x", []byte(b))
	}
	if ARP(b[:27]).IsValid() {
		t.Fatal("short ARP valid")
	}
}

func TestNoAllocs(t *testing.T) {
	pkt := tcp4([4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, 1, 2, []byte("hello"))
	ip := IPv4(pkt)
	tcp := TCP(pkt[20:])
	n := testing.AllocsPerRun(100, func() {
		_ = ip.Validate()
		ip.SetDst([4]byte{198, 19, 0, 9})
		tcp.UpdateChecksumAddr4([4]byte{198, 18, 0, 2}, [4]byte{198, 19, 0, 9})
		tcp.SetDstPort(8080)
		ip.DecTTL()
		_ = Checksum(pkt, 0)
	})
	if n != 0 {
		t.Fatalf("allocs = %v, want 0", n)
	}
}

func BenchmarkChecksum1500(b *testing.B) {
	buf := make([]byte, 1500)
	b.ReportAllocs()
	b.SetBytes(1500)
	for b.Loop() {
		_ = Checksum(buf, 0)
	}
}

func BenchmarkRewrite4(b *testing.B) {
	pkt := tcp4([4]byte{198, 18, 0, 1}, [4]byte{198, 18, 0, 2}, 1, 2, nil)
	ip := IPv4(pkt)
	tcp := TCP(pkt[20:])
	b.ReportAllocs()
	for i := 0; b.Loop(); i++ {
		nd := [4]byte{198, 19, 0, byte(i)}
		od := ip.Dst()
		ip.SetDst(nd)
		tcp.UpdateChecksumAddr4(od, nd)
		tcp.SetDstPort(uint16(i))
	}
}

// TestIsChecksumValidMatchesGeneric: the 20-byte fast path agrees with the
// generic sum on random headers, valid or not.
func TestIsChecksumValidMatchesGeneric(t *testing.T) {
	r := rand.New(rand.NewPCG(5, 6))
	b := make([]byte, 20)
	for i := 0; i < 200000; i++ {
		for j := range b {
			b[j] = byte(r.Uint32())
		}
		b[0] = 0x45
		if i%2 == 0 {
			IPv4(b).SetChecksum(IPv4(b).CalculateChecksum())
		}
		if got, want := IPv4(b).IsChecksumValid(), Checksum(b, 0) == 0xffff; got != want {
			t.Fatalf("% x: fast %v generic %v", b, got, want)
		}
	}
}
