package header

import "encoding/binary"

// ICMPv4 sizes, types and codes (RFC 792, RFC 1191).
const (
	ICMPv4MinimumSize = 8

	ICMPv4EchoReply      uint8 = 0
	ICMPv4DstUnreachable uint8 = 3
	ICMPv4Echo           uint8 = 8
	ICMPv4TimeExceeded   uint8 = 11
	ICMPv4ParamProblem   uint8 = 12

	ICMPv4FragNeeded uint8 = 4 // code of DstUnreachable
)

// ICMPv4 is an ICMPv4 message (RFC 792) at the start of the slice.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     Type      |     Code      |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   rest of header: id+seq (echo), unused+MTU (frag needed)     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|   data: for errors, the offending IP header + >= 8 bytes      |
//
// The checksum covers the whole message. Check the length against
// ICMPv4MinimumSize first.
type ICMPv4 []byte

// Type returns the message type.
func (b ICMPv4) Type() uint8 { return b[0] }

// Code returns the message code.
func (b ICMPv4) Code() uint8 { return b[1] }

// Checksum returns the checksum field.
func (b ICMPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[2:]) }

// SetChecksum writes the checksum field.
func (b ICMPv4) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[2:], c) }

// MTU returns the next-hop MTU of a fragmentation-needed message (RFC 1191).
func (b ICMPv4) MTU() uint16 { return binary.BigEndian.Uint16(b[6:]) }

// Payload returns the data after the 8-byte header.
func (b ICMPv4) Payload() []byte { return b[ICMPv4MinimumSize:] }

// IsError reports whether the type is an error that quotes an offending
// datagram.
func (b ICMPv4) IsError() bool {
	switch b.Type() {
	case ICMPv4DstUnreachable, ICMPv4TimeExceeded, ICMPv4ParamProblem:
		return true
	}
	return false
}

// CalculateChecksum returns the checksum the message should carry, computed
// with its checksum field taken as zero.
func (b ICMPv4) CalculateChecksum() uint16 {
	s := Checksum(b[:2], 0)
	return ^Checksum(b[4:], uint32(s))
}
