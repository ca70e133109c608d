package header

import "encoding/binary"

// TCPMinimumSize is the size of a TCP header without options (RFC 9293).
const TCPMinimumSize = 20

// TCP flag bits, as in byte 13 of the header.
const (
	TCPFlagFIN uint8 = 0x01
	TCPFlagSYN uint8 = 0x02
	TCPFlagRST uint8 = 0x04
	TCPFlagPSH uint8 = 0x08
	TCPFlagACK uint8 = 0x10
	TCPFlagURG uint8 = 0x20
)

const tcpChecksum = 16

// TCP is a TCP header (RFC 9293) at the start of the slice.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	|                        Sequence Number                        |
//	|                    Acknowledgment Number                      |
//	|  Data |       |C|E|U|A|P|R|S|F|                               |
//	| Offset| Rsrvd |W|C|R|C|S|S|Y|I|            Window             |
//	|           Checksum            |         Urgent Pointer        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Check the length against TCPMinimumSize first.
type TCP []byte

// SrcPort returns the source port.
func (b TCP) SrcPort() uint16 { return binary.BigEndian.Uint16(b[0:]) }

// DstPort returns the destination port.
func (b TCP) DstPort() uint16 { return binary.BigEndian.Uint16(b[2:]) }

// Seq returns the sequence number.
func (b TCP) Seq() uint32 { return binary.BigEndian.Uint32(b[4:]) }

// Ack returns the acknowledgment number.
func (b TCP) Ack() uint32 { return binary.BigEndian.Uint32(b[8:]) }

// DataOffset returns the header length in bytes.
func (b TCP) DataOffset() int { return int(b[12]>>4) * 4 }

// Flags returns the flag byte.
func (b TCP) Flags() uint8 { return b[13] }

// Checksum returns the checksum field.
func (b TCP) Checksum() uint16 { return binary.BigEndian.Uint16(b[tcpChecksum:]) }

// SetChecksum writes the checksum field.
func (b TCP) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[tcpChecksum:], c) }

// SetSrcPort rewrites the source port and patches the checksum.
func (b TCP) SetSrcPort(p uint16) {
	old := b.SrcPort()
	binary.BigEndian.PutUint16(b[0:], p)
	b.SetChecksum(ChecksumUpdate16(b.Checksum(), old, p))
}

// SetDstPort rewrites the destination port and patches the checksum.
func (b TCP) SetDstPort(p uint16) {
	old := b.DstPort()
	binary.BigEndian.PutUint16(b[2:], p)
	b.SetChecksum(ChecksumUpdate16(b.Checksum(), old, p))
}

// UpdateChecksumAddr4 patches the checksum for a pseudo-header address that
// changed from old to new.
func (b TCP) UpdateChecksumAddr4(old, new [4]byte) {
	b.SetChecksum(ChecksumUpdate32(b.Checksum(), old, new))
}
