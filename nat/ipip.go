package nat

import "github.com/culvert-lb/culvert/internal/header"

// IPIPOverhead is the number of bytes EncapIPIP adds to a frame.
const IPIPOverhead = header.IPv4MinimumSize

// EncapIPIP encapsulates the IPv4 packet of an Ethernet frame in an outer
// IPv4 header (protocol 4, RFC 2003) addressed from src to dst.
//
// buf is the frame's chunk seen from IPIPOverhead bytes before the frame:
// buf[IPIPOverhead:] is the original frame, Ethernet header first. On return
// buf itself is the encapsulated frame. The Ethernet header moves forward by
// IPIPOverhead bytes and the outer header fills the gap; the inner packet is
// not moved or changed. The outer header copies the inner TOS and DF bit (so
// path MTU discovery keeps working end to end) and carries TTL 64 and
// identification 0 when DF is set; without DF the caller supplies an
// identification. The caller checks that the result fits the link MTU and
// sets the Ethernet addresses.
func EncapIPIP(buf []byte, src, dst [4]byte, id uint16) {
	copy(buf[:header.EthernetMinimumSize], buf[IPIPOverhead:IPIPOverhead+header.EthernetMinimumSize])
	inner := header.IPv4(buf[IPIPOverhead+header.EthernetMinimumSize:])
	outer := header.IPv4(buf[header.EthernetMinimumSize:])
	f := header.IPv4Fields{
		TOS:      inner.TOS(),
		TotalLen: inner.TotalLen() + IPIPOverhead,
		DF:       inner.DF(),
		TTL:      64,
		Protocol: header.ProtoIPIP,
		Src:      src,
		Dst:      dst,
	}
	if !f.DF {
		f.ID = id
	}
	outer.Encode(&f)
}

// DecapIPIP undoes EncapIPIP on a frame whose IPv4 payload is protocol 4:
// it moves the Ethernet header over the outer IPv4 header and returns the
// decapsulated frame, a suffix of frame. It reports false when the frame is
// not a well-formed IP-in-IP packet. Backends use it (culvert decap); the
// tests use it to check EncapIPIP.
func DecapIPIP(frame []byte) ([]byte, bool) {
	if len(frame) < header.EthernetMinimumSize+2*header.IPv4MinimumSize {
		return nil, false
	}
	outer := header.IPv4(frame[header.EthernetMinimumSize:])
	if outer.Version() != 4 || outer.Protocol() != header.ProtoIPIP || outer.HeaderLen() < header.IPv4MinimumSize {
		return nil, false
	}
	hl := outer.HeaderLen()
	if len(frame) < header.EthernetMinimumSize+hl+header.IPv4MinimumSize {
		return nil, false
	}
	out := frame[hl:]
	copy(out[:header.EthernetMinimumSize], frame[:header.EthernetMinimumSize])
	return out, true
}
