package nat

import "github.com/culvert-lb/culvert/internal/header"

// RewriteICMPError4 translates an ICMPv4 error message that quotes a packet of
// a tracked flow, as Katran and GLB forward path-MTU and unreachable messages
// to the host that owns the flow.
//
// ip is the outer IPv4 header and icmp the ICMP message (ip's payload). The
// outer header is rewritten to src -> dst. The quoted packet, an IPv4 header
// followed by at least the eight bytes that hold the ports, is rewritten to
// qsrc:qsport -> qdst:qdport: its header checksum and, when quoted, its
// TCP/UDP checksum are patched incrementally, and the ICMP checksum, which
// covers the quote, is recomputed over the whole message. The caller has
// checked with QuotedOK4 that the quote is long enough.
func RewriteICMPError4(ip header.IPv4, icmp header.ICMPv4, src, dst, qsrc, qdst [4]byte, qsport, qdport uint16) {
	ip.SetSrc(src)
	ip.SetDst(dst)
	q := header.IPv4(icmp.Payload())
	oqsrc, oqdst := q.Src(), q.Dst()
	q.SetSrc(qsrc)
	q.SetDst(qdst)
	l4 := q[q.HeaderLen():]
	osport := uint16(l4[0])<<8 | uint16(l4[1])
	odport := uint16(l4[2])<<8 | uint16(l4[3])
	putPorts(l4, qsport, qdport)
	patch := func(off int, zeroMeansNone bool) {
		if len(l4) < off+2 {
			return // checksum not quoted
		}
		c := uint16(l4[off])<<8 | uint16(l4[off+1])
		if c == 0 && zeroMeansNone {
			return
		}
		c = header.ChecksumUpdate32(c, oqsrc, qsrc)
		c = header.ChecksumUpdate32(c, oqdst, qdst)
		c = header.ChecksumUpdate16(c, osport, qsport)
		c = header.ChecksumUpdate16(c, odport, qdport)
		if c == 0 && zeroMeansNone {
			c = 0xffff
		}
		l4[off], l4[off+1] = byte(c>>8), byte(c)
	}
	switch q.Protocol() {
	case header.ProtoTCP:
		patch(16, false)
	case header.ProtoUDP:
		patch(6, true)
	}
	icmp.SetChecksum(icmp.CalculateChecksum())
}

// QuotedOK4 reports whether an ICMP error message quotes a whole IPv4 header
// and the first eight bytes of its payload, enough to find and rewrite the
// flow it refers to.
func QuotedOK4(icmp header.ICMPv4) bool {
	if len(icmp) < header.ICMPv4MinimumSize+header.IPv4MinimumSize+8 {
		return false
	}
	q := header.IPv4(icmp.Payload())
	hl := q.HeaderLen()
	return q.Version() == 4 && hl >= header.IPv4MinimumSize && len(q) >= hl+8
}

// FragNeededSize returns the length of the frame FragNeeded4 builds from a
// frame whose IPv4 header is ihl bytes long.
func FragNeededSize(ihl int) int {
	return header.EthernetMinimumSize + header.IPv4MinimumSize + header.ICMPv4MinimumSize + ihl + 8
}

// FragNeeded4 turns an Ethernet+IPv4 frame that is too big for the next link
// into the ICMP "fragmentation needed" error (type 3 code 4, RFC 1191) that
// answers it, in place, and returns the new frame length. The answer goes
// back where the frame came from (its source MAC and address), from the
// address the frame was sent to, and quotes the frame's IPv4 header and the
// first eight bytes of its payload, as RFC 792 requires. mtu is the largest
// IPv4 packet the sender may send. The frame must hold at least
// FragNeededSize(ihl) bytes, which any packet larger than an MTU of 68 or
// more does.
func FragNeeded4(frame []byte, self header.MAC, mtu uint16) int {
	eth := header.Ethernet(frame)
	SetMACs(eth, self, eth.Src())
	ip := header.IPv4(frame[header.EthernetMinimumSize:])
	src, dst := ip.Src(), ip.Dst()
	q := ip.HeaderLen() + 8
	const qoff = header.EthernetMinimumSize + header.IPv4MinimumSize + header.ICMPv4MinimumSize
	copy(frame[qoff:qoff+q], frame[header.EthernetMinimumSize:header.EthernetMinimumSize+q])
	header.IPv4(frame[header.EthernetMinimumSize:]).Encode(&header.IPv4Fields{
		TotalLen: uint16(header.IPv4MinimumSize + header.ICMPv4MinimumSize + q),
		TTL:      64,
		Protocol: header.ProtoICMP,
		Src:      dst,
		Dst:      src,
	})
	icmp := header.ICMPv4(frame[header.EthernetMinimumSize+header.IPv4MinimumSize : qoff+q])
	icmp[0], icmp[1] = header.ICMPv4DstUnreachable, header.ICMPv4FragNeeded
	icmp[4], icmp[5] = 0, 0
	icmp[6], icmp[7] = byte(mtu>>8), byte(mtu)
	icmp.SetChecksum(icmp.CalculateChecksum())
	return qoff + q
}
