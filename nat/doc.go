// Package nat rewrites IPv4 packets in place for the three forwarding modes,
// and allocates the source ports of full NAT.
//
//   - Full NAT (DNAT+SNAT, like DPVS FNAT): Rewrite4 replaces addresses and
//     ports and patches the IPv4 header checksum and the TCP/UDP checksum
//     incrementally (RFC 1624), so whatever the sender computed stays exactly
//     as valid as it was: a correct checksum stays correct and a corrupt one
//     stays corrupt for the receiver to catch. Checksums are never verified
//     here.
//   - DSR (L2 direct server return, like IPVS DR and Maglev): only the
//     Ethernet addresses change (SetMACs).
//   - IP-in-IP (like Katran): EncapIPIP prepends an outer IPv4 header into the
//     frame's headroom, without moving the payload.
//
// ICMP errors that quote a tracked flow are translated by RewriteICMPError4,
// which rewrites both the outer header and the quoted one.
//
// Nothing here allocates or locks; every function takes header views over
// the frame and works on the bytes in place.
package nat
