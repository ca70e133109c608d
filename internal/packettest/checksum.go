package packettest

// Checksum returns the Internet checksum of b (RFC 1071): the one's
// complement of the one's complement sum of b's big-endian 16-bit words, an
// odd last byte counting as the high byte of a word. initial is added to the
// sum first; pass a pseudo-header sum there, or 0.
//
// Over bytes that already hold a correct checksum field the sum is 0xffff,
// so Checksum returns 0: that is how the checkers verify. It is written as
// plainly as possible, word by word, to serve as an oracle for optimized
// and incremental implementations; it is not fast.
func Checksum(b []byte, initial uint32) uint16 {
	sum := uint64(initial)
	for len(b) >= 2 {
		sum += uint64(b[0])<<8 | uint64(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		sum += uint64(b[0]) << 8
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}

// pseudoHeaderSum returns the unfolded sum of the TCP/UDP pseudo-header:
// RFC 9293 section 3.1 for IPv4 (addresses, protocol, length) and RFC 8200
// section 8.1 for IPv6 (addresses, 32-bit length, next header). src and dst
// are the raw address bytes, 4 or 16 of each.
func pseudoHeaderSum(src, dst []byte, proto uint8, length int) uint32 {
	var sum uint32
	for _, a := range [][]byte{src, dst} {
		for i := 0; i+1 < len(a); i += 2 {
			sum += uint32(a[i])<<8 | uint32(a[i+1])
		}
	}
	return sum + uint32(proto) + uint32(length>>16) + uint32(length&0xffff)
}
