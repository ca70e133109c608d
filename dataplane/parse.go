package dataplane

import (
	"github.com/culvert-lb/culvert/conntrack"
	"github.com/culvert-lb/culvert/internal/header"
	"github.com/culvert-lb/culvert/nat"
)

// kind is how the pipeline will handle a decoded frame.
type kind uint8

const (
	kindDrop    kind = iota // malformed: reason in drop
	kindPass                // not ours to balance: reason in pass
	kindFlow                // TCP or UDP: key holds its tuple
	kindICMPErr             // ICMP error: key holds the quoted flow, reversed
	kindEcho                // ICMP echo request
	kindARP                 // ARP over IPv4
)

// parsed is a frame decoded once. Later stages use its offsets and the key
// and never parse again.
type parsed struct {
	kind  kind
	proto uint8 // IPv4 protocol (of the quoted packet for kindICMPErr)
	flags uint8 // TCP flags
	drop  DropReason
	pass  PassReason
	l4    uint16 // offset of the L4 header (ICMP header for kindICMPErr)
}

const l3 = header.EthernetMinimumSize

// decode classifies frame and fills p and, for flows and ICMP errors, k.
// It never panics on any input: every length is checked before use.
func decode(frame []byte, p *parsed, k *conntrack.Key4) {
	*p = parsed{}
	if len(frame) < header.EthernetMinimumSize {
		p.kind, p.drop = kindDrop, DropTruncated
		return
	}
	switch header.Ethernet(frame).Type() {
	case header.EtherTypeIPv4:
	case header.EtherTypeARP:
		p.kind = kindARP
		return
	default:
		p.kind, p.pass = kindPass, PassNotIPv4
		return
	}
	ip := header.IPv4(frame[l3:])
	switch ip.Validate() {
	case header.IPv4OK:
	case header.IPv4Truncated:
		p.kind, p.drop = kindDrop, DropTruncated
		return
	case header.IPv4BadVersion:
		p.kind, p.drop = kindDrop, DropBadIPVersion
		return
	case header.IPv4BadIHL:
		p.kind, p.drop = kindDrop, DropBadIHL
		return
	case header.IPv4BadTotalLength:
		p.kind, p.drop = kindDrop, DropBadTotalLength
		return
	default:
		p.kind, p.drop = kindDrop, DropBadIPChecksum
		return
	}
	hl := ip.HeaderLen()
	p.proto = ip.Protocol()
	p.l4 = uint16(l3 + hl)
	seg := frame[l3+hl : l3+int(ip.TotalLen())]
	switch p.proto {
	case header.ProtoTCP, header.ProtoUDP:
	case header.ProtoICMP:
		decodeICMP(ip, seg, p, k)
		return
	default:
		p.kind, p.pass = kindPass, PassOtherProto
		return
	}
	if ip.IsFragment() {
		p.kind, p.drop = kindDrop, DropFragment
		return
	}
	if hl != header.IPv4MinimumSize {
		p.kind, p.drop = kindDrop, DropIPOptions
		return
	}
	if p.proto == header.ProtoTCP {
		t := header.TCP(seg)
		if len(seg) < header.TCPMinimumSize {
			p.kind, p.drop = kindDrop, DropTruncated
			return
		}
		if t.DataOffset() < header.TCPMinimumSize || t.DataOffset() > len(seg) {
			p.kind, p.drop = kindDrop, DropBadTCPHeader
			return
		}
		p.flags = t.Flags()
	} else {
		u := header.UDP(seg)
		if len(seg) < header.UDPMinimumSize {
			p.kind, p.drop = kindDrop, DropTruncated
			return
		}
		if u.Length() < header.UDPMinimumSize || int(u.Length()) > len(seg) {
			p.kind, p.drop = kindDrop, DropBadUDPHeader
			return
		}
	}
	p.kind = kindFlow
	*k = conntrack.Key4{
		Src:     ip.Src(),
		Dst:     ip.Dst(),
		SrcPort: uint16(seg[0])<<8 | uint16(seg[1]),
		DstPort: uint16(seg[2])<<8 | uint16(seg[3]),
		Proto:   p.proto,
	}
}

func decodeICMP(ip header.IPv4, seg []byte, p *parsed, k *conntrack.Key4) {
	if ip.IsFragment() || len(seg) < header.ICMPv4MinimumSize {
		p.kind, p.pass = kindPass, PassICMP
		return
	}
	m := header.ICMPv4(seg)
	if m.Type() == header.ICMPv4Echo && m.Code() == 0 {
		p.kind = kindEcho
		return
	}
	if !m.IsError() {
		p.kind, p.pass = kindPass, PassICMP
		return
	}
	if !nat.QuotedOK4(m) {
		// Cannot say which flow it is about; the kernel may know.
		p.kind, p.pass = kindPass, PassICMP
		return
	}
	q := header.IPv4(m.Payload())
	qp := q.Protocol()
	if qp != header.ProtoTCP && qp != header.ProtoUDP {
		p.kind, p.pass = kindPass, PassICMP
		return
	}
	l4 := q[q.HeaderLen():]
	p.kind = kindICMPErr
	p.proto = qp
	// The quote is a packet the flow's far end received; reversed, it is the
	// tuple of the packets this appliance receives from that end.
	*k = conntrack.Key4{
		Src:     q.Dst(),
		Dst:     q.Src(),
		SrcPort: uint16(l4[2])<<8 | uint16(l4[3]),
		DstPort: uint16(l4[0])<<8 | uint16(l4[1]),
		Proto:   qp,
	}
}
