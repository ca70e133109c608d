package header

import "encoding/binary"

// IPv4 sizes and protocol numbers (RFC 791, IANA).
const (
	IPv4MinimumSize = 20
	IPv4MaximumSize = 60

	ProtoICMP  uint8 = 1
	ProtoIPIP  uint8 = 4
	ProtoTCP   uint8 = 6
	ProtoUDP   uint8 = 17
	ProtoICMP6 uint8 = 58
)

const (
	ipv4VersionIHL = 0
	ipv4TotalLen   = 2
	ipv4ID         = 4
	ipv4FlagsFrag  = 6
	ipv4TTL        = 8
	ipv4Protocol   = 9
	ipv4Checksum   = 10
	ipv4Src        = 12
	ipv4Dst        = 16

	ipv4FlagDF     = 0x4000
	ipv4FlagMF     = 0x2000
	ipv4OffsetMask = 0x1fff
)

// IPv4 is an IPv4 header (RFC 791) at the start of the slice.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |Type of Service|          Total Length         |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|         Identification        |Flags|      Fragment Offset    |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|  Time to Live |    Protocol   |         Header Checksum       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                       Source Address                          |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    Destination Address                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Check the length against IPv4MinimumSize first; the accessors do not
// bounds-check. Nothing here allocates.
type IPv4 []byte

// Version returns the version field (4 for a valid header).
func (b IPv4) Version() uint8 { return b[ipv4VersionIHL] >> 4 }

// HeaderLen returns the header length in bytes (IHL * 4).
func (b IPv4) HeaderLen() int { return int(b[ipv4VersionIHL]&0x0f) * 4 }

// TOS returns the type-of-service byte (DSCP and ECN).
func (b IPv4) TOS() uint8 { return b[1] }

// TotalLen returns the total length field: header plus payload.
func (b IPv4) TotalLen() uint16 { return binary.BigEndian.Uint16(b[ipv4TotalLen:]) }

// ID returns the identification field.
func (b IPv4) ID() uint16 { return binary.BigEndian.Uint16(b[ipv4ID:]) }

// DF reports whether the don't-fragment flag is set.
func (b IPv4) DF() bool { return binary.BigEndian.Uint16(b[ipv4FlagsFrag:])&ipv4FlagDF != 0 }

// IsFragment reports whether this is any fragment of a larger datagram:
// more-fragments set or a non-zero offset.
func (b IPv4) IsFragment() bool {
	return binary.BigEndian.Uint16(b[ipv4FlagsFrag:])&(ipv4FlagMF|ipv4OffsetMask) != 0
}

// FragmentOffset returns the fragment offset in bytes.
func (b IPv4) FragmentOffset() int {
	return int(binary.BigEndian.Uint16(b[ipv4FlagsFrag:])&ipv4OffsetMask) * 8
}

// TTL returns the time-to-live.
func (b IPv4) TTL() uint8 { return b[ipv4TTL] }

// Protocol returns the payload's protocol number.
func (b IPv4) Protocol() uint8 { return b[ipv4Protocol] }

// Checksum returns the header checksum field.
func (b IPv4) Checksum() uint16 { return binary.BigEndian.Uint16(b[ipv4Checksum:]) }

// Src returns the source address.
func (b IPv4) Src() [4]byte { return [4]byte(b[ipv4Src : ipv4Src+4]) }

// Dst returns the destination address.
func (b IPv4) Dst() [4]byte { return [4]byte(b[ipv4Dst : ipv4Dst+4]) }

// Payload returns the bytes after the header up to the total length.
// Valid only after IsValid.
func (b IPv4) Payload() []byte { return b[b.HeaderLen():b.TotalLen()] }

// IsChecksumValid reports whether the header checksum verifies.
func (b IPv4) IsChecksumValid() bool {
	hl := b.HeaderLen()
	if hl == IPv4MinimumSize {
		// Five 32-bit words, summed wide and folded once: a one's
		// complement sum is the same over any word size (RFC 1071).
		_ = b[19]
		s := uint64(binary.BigEndian.Uint32(b[0:])) + uint64(binary.BigEndian.Uint32(b[4:])) +
			uint64(binary.BigEndian.Uint32(b[8:])) + uint64(binary.BigEndian.Uint32(b[12:])) +
			uint64(binary.BigEndian.Uint32(b[16:]))
		return fold64(s) == 0xffff
	}
	return Checksum(b[:hl], 0) == 0xffff
}

// CalculateChecksum returns the checksum the header should carry, computed
// over the header with its checksum field taken as zero.
func (b IPv4) CalculateChecksum() uint16 {
	s := Checksum(b[:ipv4Checksum], 0)
	s = Checksum(b[ipv4Checksum+2:b.HeaderLen()], uint32(s))
	return ^s
}

// SetChecksum writes the checksum field.
func (b IPv4) SetChecksum(c uint16) { binary.BigEndian.PutUint16(b[ipv4Checksum:], c) }

// SetSrc rewrites the source address and patches the header checksum
// incrementally (RFC 1624). The caller patches the L4 pseudo-header sum.
func (b IPv4) SetSrc(a [4]byte) {
	old := b.Src()
	copy(b[ipv4Src:], a[:])
	b.SetChecksum(ChecksumUpdate32(b.Checksum(), old, a))
}

// SetDst rewrites the destination address and patches the header checksum
// incrementally (RFC 1624). The caller patches the L4 pseudo-header sum.
func (b IPv4) SetDst(a [4]byte) {
	old := b.Dst()
	copy(b[ipv4Dst:], a[:])
	b.SetChecksum(ChecksumUpdate32(b.Checksum(), old, a))
}

// DecTTL decrements the time-to-live by one and patches the header checksum.
// The caller checks TTL() > 1 first.
func (b IPv4) DecTTL() {
	old := binary.BigEndian.Uint16(b[ipv4TTL:])
	b[ipv4TTL]--
	b.SetChecksum(ChecksumUpdate16(b.Checksum(), old, binary.BigEndian.Uint16(b[ipv4TTL:])))
}

// IPv4Fields are the values Encode writes.
type IPv4Fields struct {
	TOS      uint8
	TotalLen uint16
	ID       uint16
	DF       bool
	TTL      uint8
	Protocol uint8
	Src, Dst [4]byte
}

// Encode writes a 20-byte header without options, checksum included.
func (b IPv4) Encode(f *IPv4Fields) {
	b[0] = 0x45
	b[1] = f.TOS
	binary.BigEndian.PutUint16(b[ipv4TotalLen:], f.TotalLen)
	binary.BigEndian.PutUint16(b[ipv4ID:], f.ID)
	var ff uint16
	if f.DF {
		ff = ipv4FlagDF
	}
	binary.BigEndian.PutUint16(b[ipv4FlagsFrag:], ff)
	b[ipv4TTL] = f.TTL
	b[ipv4Protocol] = f.Protocol
	copy(b[ipv4Src:], f.Src[:])
	copy(b[ipv4Dst:], f.Dst[:])
	b.SetChecksum(0)
	b.SetChecksum(b.CalculateChecksum())
}

// IPv4Status is the outcome of IPv4.Validate.
type IPv4Status uint8

// Validate results, from the first check that fails.
const (
	IPv4OK             IPv4Status = iota
	IPv4Truncated                 // shorter than 20 bytes or than IHL*4
	IPv4BadVersion                // version field is not 4
	IPv4BadIHL                    // IHL below 5
	IPv4BadTotalLength            // total length below the header or beyond the frame
	IPv4BadChecksum               // header checksum does not verify
)

// Validate checks that b holds a complete IPv4 header and the datagram its
// total length promises, and that the header checksum verifies. Trailing
// bytes beyond the total length (Ethernet padding) are allowed.
func (b IPv4) Validate() IPv4Status {
	if len(b) < IPv4MinimumSize {
		return IPv4Truncated
	}
	if b.Version() != 4 {
		return IPv4BadVersion
	}
	hl := b.HeaderLen()
	if hl < IPv4MinimumSize {
		return IPv4BadIHL
	}
	if len(b) < hl {
		return IPv4Truncated
	}
	tl := int(b.TotalLen())
	if tl < hl || tl > len(b) {
		return IPv4BadTotalLength
	}
	if !b.IsChecksumValid() {
		return IPv4BadChecksum
	}
	return IPv4OK
}
