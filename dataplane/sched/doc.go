// Package sched picks the backend for a new flow of a virtual service:
// Maglev consistent hashing (Eisenbud et al., NSDI 2016), weighted round
// robin, and weighted least connections.
//
// The control plane builds one immutable Scheduler per service with New
// (or NewMaglev, NewWRR, NewLeastConn) and publishes it to the workers, for
// instance through an atomic.Pointer; to change the pool it builds a new
// one and swaps it in. Workers call Pick once per new flow, passing the
// flow's FlowHash4/FlowHash6 and their own cursor for the service. Pick,
// FlowHash4, FlowHash6 and Active's methods allocate nothing, take no lock
// and make no syscall (TestNoAllocs); the constructors allocate and are for
// the control path.
//
// # Determinism contract
//
// Two appliances with the same configuration must send the same flow to the
// same backend: HA failover hands flows to a peer that has no state for
// them, and ECMP scale-out spreads one flow's packets over several
// appliances. So the Maglev choice depends only on the configuration (the
// 16-byte HashKey, the table size, each backend's address, port and weight)
// and the flow's 5-tuple, never on a seed chosen at start, map order, pool
// order, the Go version, the CPU or its byte order. What must stay the same
// from one release to the next:
//
//  1. The flow hash: SipHash-2-4 with the HashKey read as two
//     little-endian 64-bit words, over src|dst|sport|dport|proto in network
//     byte order (13 bytes for IPv4, 37 for IPv6).
//  2. The slot of a hash: ⌊h·M / 2⁶⁴⌋ for a table of M slots.
//  3. A backend's canonical name: its address as 16 bytes (IPv4 as
//     ::ffff:a.b.c.d, zone ignored) then its port, big-endian; the canonical
//     order is the byte order of names.
//  4. Its permutation: offset = SipHash-2-4(name|'o') mod M,
//     skip = SipHash-2-4(name|'s') mod (M−1) + 1.
//  5. The population: backends of weight 0 are left out; backend i takes its
//     k-th turn in round ⌈k·W/wᵢ⌉ (W the largest weight), backends within
//     a round in canonical order, and each turn claims the first free slot
//     left in its permutation.
//
// Backend IDs are the dataplane's own indices and may differ between
// appliances: agreement is on the (address, port) behind the ID. How the
// table is computed may change (see populate's two paths); what it contains
// may not. TestSipHashReferenceVectors, TestFlowHashGolden, TestMaglevGolden
// and TestMaglevMatchesReference pin all five points; if one of them fails,
// the change breaks mixed-version clusters and needs a release note and a
// coordinated upgrade, not a new golden value.
//
// WRR and LeastConn depend on per-worker cursors and live counts, so they
// do not agree across appliances; flows scheduled by them survive failover
// only through conntrack state sync.
//
// # Remapping
//
// Maglev trades a little disruption for an even spread: when a backend
// leaves or joins, slightly more than the ideal 1/N of flows move, and a
// few flows of surviving backends move too. Measured by TestMaglevRemap
// (one equal-weight backend removed / added, 1M random flows; the fraction
// of flows that changed backend equals the fraction of slots to ±0.0005):
//
//	N     M       removed (ideal)   added (ideal)     surviving flows moved (rm / add)
//	3     65537   0.3336 (0.3333)   0.2507 (0.2500)   0.03% / 0.10%
//	10    65537   0.1022 (0.1000)   0.0933 (0.0909)   0.24% / 0.26%
//	100   65537   0.0158 (0.0100)   0.0154 (0.0099)   0.59% / 0.56%
//	100   655373  0.0114 (0.0100)   0.0114 (0.0099)   0.14% / 0.16%
//	1000  65537   0.0069 (0.0010)   0.0068 (0.0010)   0.58% / 0.57%
//
// Over 8 keys the removed/ideal ratio averaged 1.02 (N=10), 1.12 (N=30),
// 1.56 (N=100), 3.5 (N=300) and 6.9 (N=1000) at M = 65537, and 1.14 (N=100),
// 1.58 (N=300) and 4.3 (N=1000) at M = 655373: the excess is a roughly fixed
// share of all flows (0.5-0.8% at M = 65537, 0.15-0.35% at M = 655373), so
// it dominates the ideal 1/N once N is large: removing one of 1000 backends
// at the default size moves 0.69% of flows where 0.10% would do. For a
// removal to move at most about 1.15/N of flows, M needs to be some 2000·N or
// more: the default 65537 gives that up to about 30 backends, 655373
// (2.5 MiB per table, about 20 ms to build) up to about 300.
//
// Weights are honoured to within 1 + N·wᵢ/Σw slots (TestMaglevDistribution:
// weights 1,2,3,4 give 6554, 13107, 19661 and 26215 of 65537 slots, and
// 1M random flows split 0.0998 / 0.2006 / 0.2994 / 0.4003).
//
// # Costs
//
// go test -run '^$' -bench . -benchmem on the shared 2-core dev VM (AMD
// EPYC, Go 1.26), quietest of several runs: FlowHash4 10.7 ns, FlowHash6
// 22 ns, Maglev.Pick 1.2 ns (spread hashes, 256 KiB table in cache),
// WRR.Pick 1.2-1.6 ns, LeastConn.Pick 12 ns for 10 backends and 135 ns for
// 100, all with 0 allocs/op. NewMaglev at M = 65537 takes 1.3 ms for 10
// backends, 1.7 ms for 100 and 2.0 ms for 1000; NewWRR for 1000 backends
// (cycle of 65536) about 7 ms.
package sched
