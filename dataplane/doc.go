// Package dataplane is the packet pipeline of Culvert: per-queue workers
// that poll a nic.Queue in batches, decode each frame once, look its flow up
// in the shared connection table, pick a backend for new flows, rewrite the
// frame in place (full NAT, DSR or IP-in-IP) and hand it back to the queue to
// transmit, pass to the kernel, or drop with a counted reason.
//
// # One batch
//
//	Receive(≤64) -> clock read and config pointer loaded (once per Poll)
//	-> decode every frame (offsets, verdict class, flow key)
//	-> conntrack.LookupBatch over all keys (hash all, prefetch, then probe)
//	-> per frame: Track + rewrite, or new flow (service, scheduler,
//	   SNAT port, Insert) + rewrite, or answer ARP/echo, or pass/drop
//	-> frames leaving by another link: copied into chunks Alloc'd on that
//	   link's queue (one Alloc per link), originals released
//	-> Pass / Release on the queue the batch came from
//
// A Poll takes one such batch from each of the worker's queues (one per
// link: one-armed, one queue), then makes one Transmit call per queue with
// everything that leaves by it, and publishes the counters.
//
// # Ownership
//
// A Worker owns one queue per link, its batch arrays and its share of each
// SNAT port pool; Poll runs on one goroutine at a time. The Dataplane owns the
// connection table (shared by all workers, lock-free: see package
// conntrack), the scheduler's per-backend flow counts, and the compiled
// configuration, which Apply builds afresh and publishes through an atomic
// pointer; workers load it once per batch and never see a half-built one.
// One goroutine calls Sweep, which expires flows and returns their SNAT
// ports (through each pool's single-producer ring) and backend counts.
//
// # Contract of the hot path
//
// Poll allocates nothing, takes no locks and makes no system calls of its
// own (each queue's Transmit may, once per Poll). Per-packet functions return a
// Verdict and a DropReason, never an error; a malformed frame is counted and
// dropped and never panics (FuzzPipeline holds that line). TCP and UDP
// checksums are never verified, only patched, so whatever the sender
// computed stays exactly as valid as it was.
//
// Frames the dataplane does not own (not for a service, not a reply to a
// NAT flow) are passed to the kernel; frames for addresses it owns (VIPs,
// SNAT addresses) that match nothing are dropped, since the kernel does
// not have those addresses.
package dataplane
