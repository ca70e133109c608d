package header

import "encoding/binary"

// ARPSize is the size of an ARP message for IPv4 over Ethernet (RFC 826).
const ARPSize = 28

// ARP operations.
const (
	ARPRequest uint16 = 1
	ARPReply   uint16 = 2
)

// ARP is an ARP message for IPv4 over Ethernet (RFC 826).
//
//	+--------+--------+--------+--------+
//	| HTYPE=1         | PTYPE=0x0800    |
//	| HLEN=6 | PLEN=4 | OPER            |
//	| sender hardware address (6)       |
//	| sender protocol address (4)       |
//	| target hardware address (6)       |
//	| target protocol address (4)       |
//	+--------+--------+--------+--------+
type ARP []byte

// IsValid reports whether b is long enough and describes IPv4 over Ethernet.
func (b ARP) IsValid() bool {
	return len(b) >= ARPSize && binary.BigEndian.Uint16(b[0:]) == 1 &&
		binary.BigEndian.Uint16(b[2:]) == EtherTypeIPv4 && b[4] == 6 && b[5] == 4
}

// Op returns the operation.
func (b ARP) Op() uint16 { return binary.BigEndian.Uint16(b[6:]) }

// SenderHW returns the sender's hardware address.
func (b ARP) SenderHW() MAC { return MAC(b[8:14]) }

// SenderIP returns the sender's protocol address.
func (b ARP) SenderIP() [4]byte { return [4]byte(b[14:18]) }

// TargetHW returns the target's hardware address.
func (b ARP) TargetHW() MAC { return MAC(b[18:24]) }

// TargetIP returns the target's protocol address.
func (b ARP) TargetIP() [4]byte { return [4]byte(b[24:28]) }

// Encode writes a complete message.
func (b ARP) Encode(op uint16, sha MAC, spa [4]byte, tha MAC, tpa [4]byte) {
	binary.BigEndian.PutUint16(b[0:], 1)
	binary.BigEndian.PutUint16(b[2:], EtherTypeIPv4)
	b[4], b[5] = 6, 4
	binary.BigEndian.PutUint16(b[6:], op)
	copy(b[8:], sha[:])
	copy(b[14:], spa[:])
	copy(b[18:], tha[:])
	copy(b[24:], tpa[:])
}
