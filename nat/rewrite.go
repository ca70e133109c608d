package nat

import "github.com/culvert-lb/culvert/internal/header"

// SetMACs writes the Ethernet source and destination addresses. It is the
// whole of a DSR rewrite.
func SetMACs(eth header.Ethernet, src, dst header.MAC) {
	eth.SetDst(dst)
	eth.SetSrc(src)
}

// Rewrite4 rewrites the addresses and ports of an IPv4 TCP or UDP packet in
// place and patches the IPv4 header checksum and the L4 checksum
// incrementally. l4 is the transport header (at least TCPMinimumSize bytes for
// TCP, UDPMinimumSize for UDP, as the caller has checked). A UDP checksum of
// zero (none computed) stays zero.
func Rewrite4(ip header.IPv4, l4 []byte, proto uint8, src, dst [4]byte, sport, dport uint16) {
	osrc, odst := ip.Src(), ip.Dst()
	ip.SetSrc(src)
	ip.SetDst(dst)
	switch proto {
	case header.ProtoTCP:
		t := header.TCP(l4)
		c := t.Checksum()
		c = header.ChecksumUpdate32(c, osrc, src)
		c = header.ChecksumUpdate32(c, odst, dst)
		c = header.ChecksumUpdate16(c, t.SrcPort(), sport)
		c = header.ChecksumUpdate16(c, t.DstPort(), dport)
		putPorts(l4, sport, dport)
		t.SetChecksum(c)
	case header.ProtoUDP:
		u := header.UDP(l4)
		c := u.Checksum()
		if c != 0 {
			c = header.ChecksumUpdate32(c, osrc, src)
			c = header.ChecksumUpdate32(c, odst, dst)
			c = header.ChecksumUpdate16(c, u.SrcPort(), sport)
			c = header.ChecksumUpdate16(c, u.DstPort(), dport)
			if c == 0 {
				c = 0xffff
			}
		}
		putPorts(l4, sport, dport)
		u.SetChecksum(c)
	}
}

func putPorts(l4 []byte, sport, dport uint16) {
	l4[0], l4[1] = byte(sport>>8), byte(sport)
	l4[2], l4[3] = byte(dport>>8), byte(dport)
}
