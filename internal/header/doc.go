// Package header provides views over packet bytes: Ethernet, ARP, IPv4,
// IPv6, TCP, UDP and ICMPv4, and the Internet checksum arithmetic of
// RFC 1071 and RFC 1624.
//
// A view is a named []byte whose first byte is the first byte of the header.
// Views never copy and never allocate. Accessors do not bounds-check beyond
// what Go itself does: call the view's IsValid (or check the length against
// the type's MinimumSize) once, then read fields freely. Setters that change
// a field covered by a checksum patch that checksum incrementally where the
// header owns it (the IPv4 header checksum); the L4 checksums, which also
// cover the IP pseudo-header, are patched by the caller with the Update
// helpers in checksum.go.
//
// This package sits at the bottom of the import graph: it imports no fmt,
// log/slog or reflect, so that it stays cheap to link into the hot path.
package header
