package header

import "encoding/binary"

// Checksum returns the 16-bit one's complement sum (RFC 1071) of b added to
// initial, folded but not complemented. Callers complement the final sum to
// obtain the value written into a header. An odd trailing byte is padded with
// a zero byte on the right.
func Checksum(b []byte, initial uint32) uint16 {
	sum := uint64(initial)
	for len(b) >= 8 {
		v := binary.BigEndian.Uint64(b)
		sum += v>>48 + (v>>32)&0xffff + (v>>16)&0xffff + v&0xffff
		b = b[8:]
	}
	for len(b) >= 2 {
		sum += uint64(binary.BigEndian.Uint16(b))
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	return fold64(sum)
}

// ChecksumCombine adds two folded one's complement sums.
func ChecksumCombine(a, b uint16) uint16 {
	return fold64(uint64(a) + uint64(b))
}

func fold64(s uint64) uint16 {
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// PseudoHeaderChecksum4 returns the folded sum of the IPv4 pseudo-header
// (RFC 793 section 3.1, RFC 768) for an L4 segment of length n.
func PseudoHeaderChecksum4(proto uint8, src, dst [4]byte, n uint16) uint16 {
	s := uint64(binary.BigEndian.Uint16(src[0:])) + uint64(binary.BigEndian.Uint16(src[2:])) +
		uint64(binary.BigEndian.Uint16(dst[0:])) + uint64(binary.BigEndian.Uint16(dst[2:])) +
		uint64(proto) + uint64(n)
	return fold64(s)
}

// ChecksumUpdate16 returns the checksum field value after one 16-bit word it
// covers changed from old to new, by RFC 1624 equation 3:
// HC' = ~(~HC + ~m + m').
func ChecksumUpdate16(check, old, new uint16) uint16 {
	s := uint32(^check) + uint32(^old) + uint32(new)
	s = s>>16 + s&0xffff
	s += s >> 16
	return ^uint16(s)
}

// ChecksumUpdate32 is ChecksumUpdate16 for a 4-byte field such as an IPv4
// address.
func ChecksumUpdate32(check uint16, old, new [4]byte) uint16 {
	s := uint32(^check) +
		uint32(^binary.BigEndian.Uint16(old[0:])) + uint32(^binary.BigEndian.Uint16(old[2:])) +
		uint32(binary.BigEndian.Uint16(new[0:])) + uint32(binary.BigEndian.Uint16(new[2:]))
	s = s>>16 + s&0xffff
	s += s >> 16
	return ^uint16(s)
}

// ChecksumUpdate128 is ChecksumUpdate16 for a 16-byte field such as an IPv6
// address.
func ChecksumUpdate128(check uint16, old, new [16]byte) uint16 {
	s := uint64(^check)
	for i := 0; i < 16; i += 2 {
		s += uint64(^binary.BigEndian.Uint16(old[i:])&0xffff) + uint64(binary.BigEndian.Uint16(new[i:]))
	}
	return ^fold64(s)
}
