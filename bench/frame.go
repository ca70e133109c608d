package bench

import (
	"encoding/binary"

	"github.com/culvert-lb/culvert/internal/header"
)

// tcpSeg describes a TCP segment to build.
type tcpSeg struct {
	srcMAC, dstMAC header.MAC
	src, dst       [4]byte
	sport, dport   uint16
	seq, ack       uint32
	flags          uint8
	payload        []byte
}

// buildTCP4 returns an Ethernet+IPv4+TCP frame with valid checksums.
func buildTCP4(s tcpSeg) []byte {
	n := header.EthernetMinimumSize + header.IPv4MinimumSize + header.TCPMinimumSize + len(s.payload)
	f := make([]byte, n)
	eth := header.Ethernet(f)
	eth.SetDst(s.dstMAC)
	eth.SetSrc(s.srcMAC)
	eth.SetType(header.EtherTypeIPv4)
	ipLen := uint16(n - header.EthernetMinimumSize)
	header.IPv4(f[14:]).Encode(&header.IPv4Fields{TotalLen: ipLen, DF: true, TTL: 64, Protocol: header.ProtoTCP, Src: s.src, Dst: s.dst})
	t := header.TCP(f[34:])
	binary.BigEndian.PutUint16(t[0:], s.sport)
	binary.BigEndian.PutUint16(t[2:], s.dport)
	binary.BigEndian.PutUint32(t[4:], s.seq)
	binary.BigEndian.PutUint32(t[8:], s.ack)
	t[12] = 5 << 4
	t[13] = s.flags
	binary.BigEndian.PutUint16(t[14:], 65535)
	copy(t[20:], s.payload)
	sum := header.PseudoHeaderChecksum4(header.ProtoTCP, s.src, s.dst, uint16(len(t)))
	t.SetChecksum(^header.Checksum(t, uint32(sum)))
	return f
}

// buildUDP4 returns an Ethernet+IPv4+UDP frame with valid checksums.
func buildUDP4(srcMAC, dstMAC header.MAC, src, dst [4]byte, sport, dport uint16, payload []byte) []byte {
	n := header.EthernetMinimumSize + header.IPv4MinimumSize + header.UDPMinimumSize + len(payload)
	f := make([]byte, n)
	eth := header.Ethernet(f)
	eth.SetDst(dstMAC)
	eth.SetSrc(srcMAC)
	eth.SetType(header.EtherTypeIPv4)
	header.IPv4(f[14:]).Encode(&header.IPv4Fields{TotalLen: uint16(n - 14), TTL: 64, Protocol: header.ProtoUDP, Src: src, Dst: dst})
	u := header.UDP(f[34:])
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], dport)
	binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
	copy(u[8:], payload)
	sum := header.PseudoHeaderChecksum4(header.ProtoUDP, src, dst, uint16(len(u)))
	c := ^header.Checksum(u, uint32(sum))
	if c == 0 {
		c = 0xffff
	}
	u.SetChecksum(c)
	return f
}

// received is a frame a simulated host accepted, decoded and verified.
type received struct {
	src, dst     [4]byte
	sport, dport uint16
	proto        uint8
	flags        uint8
	seq, ack     uint32
	payload      []byte
}

// verify decodes an Ethernet+IPv4 TCP/UDP frame and checks both checksums
// from scratch, as a receiving host's stack would.
func verify(f []byte) (received, bool) {
	var r received
	if len(f) < 34 || header.Ethernet(f).Type() != header.EtherTypeIPv4 {
		return r, false
	}
	ip := header.IPv4(f[14:])
	if ip.Validate() != header.IPv4OK {
		return r, false
	}
	l4 := f[14+ip.HeaderLen() : 14+int(ip.TotalLen())]
	sum := header.PseudoHeaderChecksum4(ip.Protocol(), ip.Src(), ip.Dst(), uint16(len(l4)))
	r.src, r.dst, r.proto = ip.Src(), ip.Dst(), ip.Protocol()
	switch r.proto {
	case header.ProtoTCP:
		t := header.TCP(l4)
		if len(l4) < 20 || header.Checksum(l4, uint32(sum)) != 0xffff {
			return r, false
		}
		r.sport, r.dport, r.seq, r.ack, r.flags = t.SrcPort(), t.DstPort(), t.Seq(), t.Ack(), t.Flags()
		r.payload = l4[t.DataOffset():]
	case header.ProtoUDP:
		u := header.UDP(l4)
		if len(l4) < 8 || (u.Checksum() != 0 && header.Checksum(l4, uint32(sum)) != 0xffff) {
			return r, false
		}
		r.sport, r.dport = u.SrcPort(), u.DstPort()
		r.payload = l4[8:]
	default:
		return r, false
	}
	return r, true
}
