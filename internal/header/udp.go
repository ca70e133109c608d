package header

import "encoding/binary"

// UDPMinimumSize is the size of a UDP header (RFC 768).
const UDPMinimumSize = 8

const udpChecksum = 6

// UDP is a UDP header (RFC 768) at the start of the slice.
//
//	 0      7 8     15 16    23 24    31
//	+--------+--------+--------+--------+
//	|   Source Port   | Destination Port|
//	+--------+--------+--------+--------+
//	|     Length      |    Checksum     |
//	+--------+--------+--------+--------+
//
// Check the length against UDPMinimumSize first. Over IPv4 a checksum of
// zero means the sender computed none; the setters keep it zero, and a
// patched sum that comes out as zero is written as 0xffff (RFC 768).
type UDP []byte

// SrcPort returns the source port.
func (b UDP) SrcPort() uint16 { return binary.BigEndian.Uint16(b[0:]) }

// DstPort returns the destination port.
func (b UDP) DstPort() uint16 { return binary.BigEndian.Uint16(b[2:]) }

// Length returns the length field: header plus payload.
func (b UDP) Length() uint16 { return binary.BigEndian.Uint16(b[4:]) }

// Checksum returns the checksum field.
func (b UDP) Checksum() uint16 { return binary.BigEndian.Uint16(b[udpChecksum:]) }

// SetChecksum writes the checksum field.
func (b UDP) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[udpChecksum:], c) }

func (b UDP) patch(c uint16) {
	if c == 0 {
		c = 0xffff
	}
	b.SetChecksum(c)
}

// SetSrcPort rewrites the source port and patches a non-zero checksum.
func (b UDP) SetSrcPort(p uint16) {
	old := b.SrcPort()
	binary.BigEndian.PutUint16(b[0:], p)
	if c := b.Checksum(); c != 0 {
		b.patch(ChecksumUpdate16(c, old, p))
	}
}

// SetDstPort rewrites the destination port and patches a non-zero checksum.
func (b UDP) SetDstPort(p uint16) {
	old := b.DstPort()
	binary.BigEndian.PutUint16(b[2:], p)
	if c := b.Checksum(); c != 0 {
		b.patch(ChecksumUpdate16(c, old, p))
	}
}

// UpdateChecksumAddr4 patches a non-zero checksum for a pseudo-header address
// that changed from old to new.
func (b UDP) UpdateChecksumAddr4(old, new [4]byte) {
	if c := b.Checksum(); c != 0 {
		b.patch(ChecksumUpdate32(c, old, new))
	}
}
