// Package pktgen is the traffic source and sink of `culvert bench`: an
// AF_XDP packet generator, an XDP program that counts and drops what it
// sent, and an AF_XDP receiver that measures loss, reordering and one-way
// latency from a probe every frame carries.
//
// # Streams and frames
//
// A Template is built once from a Spec (with gopacket) and describes one
// stream: Ethernet/IPv4/UDP, or TCP SYN-only ("a new connection per
// frame") or ACK|PSH ("established"), from a range of sources to one
// destination. Frames are numbered from 0; frame n belongs to flow
// n mod Flows and carries probe sequence number n. Flow i has source port
// SrcPorts.First + i mod (ports in the range) and source address
// Src + i / (ports in the range): the source port varies first, then the
// address. Per frame only those fields, the probe's sequence number and
// time, and for TCP the sequence number, are rewritten, and the IPv4 and
// TCP/UDP checksums are patched incrementally (RFC 1624), never
// recomputed.
//
// # Frame sizes
//
// Sizes follow RFC 2544: Spec.FrameSize counts the 4-byte Ethernet FCS,
// which the NIC appends and AF_XDP never sees. A 64-byte frame is 60
// bytes in the UMEM, and a 1518-byte frame 1514. The IP datagram fills
// the frame (no Ethernet padding), so the L4 payload is FrameSize-4-14-20-8
// bytes for UDP and FrameSize-4-14-20-20 for TCP. Stats.Bytes and
// Counts.Bytes count bytes without the FCS.
//
// # The probe
//
// The L4 payload starts with a probe when it has room: 24 bytes (the full
// probe) when the payload holds 24, else 18 bytes (the compact probe, for
// 64-byte UDP frames, whose payload is exactly 18 bytes), else nothing
// (TCP frames under 72 bytes). See Probe for both layouts. The transmit
// time is CLOCK_MONOTONIC in nanoseconds (Nanotime), which every network
// namespace of a host shares, so a receiver in another namespace reads
// one-way latency directly.
//
// # Sinks
//
// XDPSink and Receiver select frames with a Match (IP protocol, destination
// port, optionally destination address, source prefix and destination MAC),
// not by the probe, so that probe-less frames (64-byte TCP) count too.
// XDPSink counts matching frames per CPU in its XDP program and drops them;
// Receiver's program redirects them to AF_XDP sockets, where Receiver reads
// the probes. Both pass everything else to the kernel. Several of either
// (one per backend) combine with the Merge methods: a load balancer spreads
// one stream's flows over its backends, so loss is only meaningful over the
// merged result (see StreamStats).
//
// # Allocation contract
//
// Template.Write and Rewrite, the generator's send loop (per batch) and the
// receiver's per-frame work allocate nothing, take no locks and make no
// system call beyond the queue's own transmit kick (sendto, once per batch
// in copy mode) and, when idle, its poll(2).
package pktgen
