// Package packettest builds Ethernet frames for the dataplane's tests and
// checks the frames the dataplane emits, field by field.
//
// It is an oracle: it imports no other package of this repository, encodes
// and decodes with github.com/google/gopacket, and recomputes every checksum
// with its own plain RFC 1071 sum (Checksum) rather than trusting either
// gopacket or the code under test.
//
// # Building
//
// TCP4, UDP4, ICMP4Echo, ICMP4Error, ARPRequest, TCP6, UDP6 and Encap4 each
// return a fresh, complete frame with correct lengths and checksums, padded
// as Ethernet pads short frames (to 60 bytes, without FCS). Options such as
// WithTTL, WithDF or WithPayloadLen change one field; a builder panics when
// given an option that means nothing for it, so a typo in a test fails loudly
// instead of building a different packet than the one intended.
//
// # Checking
//
// Check decodes a frame and runs Checkers against it. Checkers read like the
// property they test, in the style of gVisor's pkg/tcpip/checker:
//
//	packettest.Check(t, out,
//		packettest.EthDst(backendMAC),
//		packettest.IPv4(
//			packettest.Dst(backend),
//			packettest.TCP(packettest.DstPort(8080), packettest.TCPFlagsAre(packettest.FlagSYN)),
//			packettest.ValidChecksums(),
//		))
//
// Every Checker reports each mismatching field with its own t.Errorf, naming
// the field and both values, so one run shows everything that is wrong. A
// Checker looks at one scope: the frame, the packet inside an IPIP tunnel
// (Inner) or the packet quoted in an ICMP error (Quoted). Quotes are
// truncated by design, so inside Quoted a Checker that needs bytes the quote
// does not hold reports that instead of guessing.
//
// # Fixtures
//
// Fixtures returns realistic and deliberately broken frames, each with the
// classification a parser should give it, to seed fuzzers and table tests.
// Every IPv4 address in them lies in 198.18.0.0/15 (RFC 2544) and every IPv6
// address in 2001:2::/48 (RFC 5180), the benchmarking ranges.
//
// Nothing in this package is safe for use by the dataplane itself: it
// allocates freely and exists only for tests.
package packettest
