// Package conntrack is the load balancer's connection table: a fixed-size,
// sharded, lock-free table of flows shared by all dataplane workers, with
// TCP and UDP state tracking, expiry without stopping the world, safe
// iteration for `show conntrack`, and export/import of records for HA.
//
// # Use
//
// One Table per address family (Table4, Table6), created by New with a
// fixed capacity. Each dataplane worker owns a Reader and brackets every
// batch with Begin and End; inside the bracket it calls LookupBatch,
// Insert and Track, passing the clock value it read once for the batch.
// One goroutine calls Sweep periodically. The control plane calls Range,
// Import and Stats at any time.
//
//	now := conntrack.Time(clock())           // once per batch
//	r.Begin()
//	t.LookupBatch(keys, refs)                // hash, prefetch, probe, verify
//	for i, ref := range refs {
//		if ref.E == nil {                    // new flow (or an expired one)
//			e, err := t.Insert(&flows[i], conntrack.StateSynSent, now)
//			...
//			continue
//		}
//		st, ok := t.Track(ref.E, ref.Dir, tcpFlags[i], now)
//		...                                  // !ok: expired, treat as a miss
//	}
//	r.End()                                  // entries from this batch are no longer used
//
// # Memory layout
//
// All memory is allocated by New and never grows: an arena of MaxFlows
// entries, an index of 64-byte buckets, and up to 64 shards. The arena
// and the index are aligned to a cache line (and, with Config.HugePages,
// advised to use transparent huge pages).
//
// An Entry is the state word followed by the Flow. For IPv4 it is exactly
// one cache line:
//
//	0      8             24            40 41 42  44      48      52  54  56      60  64
//	+------+-------------+-------------+--+--+---+-------+-------+---+---+-------+---+
//	| word | Orig        | Reply       |HR|OW|   |Service|Backend|Loc|Own|Persist|   |
//	+------+-------------+-------------+--+--+---+-------+-------+---+---+-------+---+
//
// For IPv6 it is 112 bytes (keys of 40 bytes); entries then straddle cache
// lines and a lookup prefetches each line it needs.
//
// The state word of a live entry holds the State (bits 0-7), the TCP FIN
// bits (8-15) and the deadline in whole seconds of the caller's clock
// (32-63). An entry that is not live has State 0; bits 8-15 then say where
// it is (free, pending, dead, orphaned, retired) and bits 32-63 link it
// into the corresponding list.
//
// The index is a power-of-two array of buckets, one cache line each:
//
//	+---------+--------+--------+-----+--------+
//	| ovf     | slot 0 | slot 1 | ... | slot 6 |    8 x uint64
//	+---------+--------+--------+-----+--------+
//	slot = tag (hash bits 32-63, top bit set) << 32 | dir << 31 | entry index + 1;  0 = empty
//
// Every flow is indexed under its Orig key and, for full NAT, its Reply
// key: the slot's dir bit says which, so a lookup returns the direction
// without comparing both keys. Buckets are sized for two keys per flow at
// no more than 3/4 of the slots when the table is full (10M flows: 4Mi
// buckets, 256 MiB, 68% full). A key's home bucket is given by the low
// bits of its hash; when the home bucket is full the key goes to the next
// bucket of a triangular probe sequence and ovf of every bucket passed is
// incremented. A lookup stops at the first bucket with ovf == 0, so
// misses cost one bucket almost always, and removal clears the slot and
// decrements ovf along the path: no tombstones, no rehashing, no
// degradation over time.
//
// Measured with BenchmarkMemory (RSS growth while filling): IPv4 full NAT
// 91 bytes per flow at 10M flows (867 MiB), IPv6 full NAT 146 bytes per
// flow at 1M flows (its index is relatively larger at 1M; at 10M it is
// 112 + 27 = 139 bytes per flow, about 1.3 GiB).
//
// # Lookups
//
// LookupBatch works in three passes over up to 64 keys: hash all keys and
// prefetch their home buckets; scan each bucket for the key's tag and
// prefetch the entry's lines; verify the full keys. The cache misses of a
// batch then overlap instead of queueing one after the other. Keys whose
// home bucket overflowed get the same treatment for the next bucket of
// their probe sequence; anything still unsettled (a 1 in 2^31 tag false
// positive, a dead entry, a key stored further along) takes the ordinary
// probe. Tables under 8 MiB stay in cache and skip the prefetches.
//
// # Ownership: who writes what
//
//	Entry.flow            Insert/Import, before the entry is published; then read-only until reclaimed.
//	Entry.word            Insert/Import (publish: pending, then live), Track (CAS), Sweep (CAS to dead),
//	                      Insert/Import (CAS to dead when replacing), Sweep (retire and free links).
//	bucket.slot[i]        Insert/Import (CAS empty -> slot), whoever kills a flow (CAS slot -> empty).
//	bucket.ovf            Insert/Import (+1 when passing a full bucket), removal (-1 along the path).
//	shard.head            Insert (pop, CAS), Sweep (push, CAS). ABA-tagged Treiber stack.
//	shard.bump            Insert (CAS) until the shard's part of the arena has been used once.
//	shard counters        Insert (atomic add); read by Stats.
//	Table.orphans         Insert/Import (push, CAS), Sweep (take all, swap).
//	Reader.epoch          its worker (Begin/End); read by Sweep.
//	epoch, retire ring    Sweep only.
//
// # Insert
//
// Insert is lock-free: it scans both keys' probe sequences for a holder
// (returning ErrExists for a live one, replacing one past its deadline),
// pops a free entry from the shard picked by the hash (trying the other
// shards before giving up), writes the flow, stores the word as pending,
// CASes a slot for each key, then rescans to settle races with another
// worker inserting the same key at the same moment (the insert at the
// earlier probe position wins; the loser backs out and gets ErrExists),
// and finally stores the live state. Readers skip pending entries.
//
// # Full policy
//
// When no entry is free, Insert and Import fail with ErrFull and count it
// in Stats.Refused. Live flows are never evicted to make room; only flows
// past their deadline are replaced.
//
// # Expiry and reclamation
//
// Sweep scans a budget of arena entries from a moving cursor. An entry
// whose deadline has passed is killed by a CAS of its state word from
// that exact live value to dead, so a racing Track either refreshed it
// first (the CAS fails and the flow lives on) or sees it dead (and returns
// false). The killer removes the flow's keys from the index, reports the
// flow to the expired callback, and retires the entry.
//
// Retired entries are reused only after a grace period (epoch-based
// reclamation, as RCU): each Sweep stamps the entries it retired with the
// current epoch and then advances it; Begin records the epoch in the
// worker's Reader, End clears it. A batch of entries is freed when every
// Reader is quiescent or began at a later epoch, that is, when no worker
// can still hold a pointer found before the entries left the index. A
// worker therefore never sees an entry reused for another flow between
// Begin and End, and no read is torn (the package is clean under -race). Workers
// never wait for the sweeper, nor the sweeper for workers: a worker stuck
// inside a batch only delays reuse (Stats.Reclaiming grows).
//
// # Timeouts
//
// Deadlines are kept in whole seconds, rounded up: a flow lives at least
// its state's timeout after its last packet and less than a second more.
// Track writes the state word only when the state changes or the deadline
// moves to a later second. Defaults (DefaultTimeouts), IPVS-like:
//
//	SynSent        60 s   client SYN seen (IPVS SYN_RECV)
//	SynRecv        60 s   server SYN-ACK seen, two-way only
//	Established    15 min
//	FinWait       120 s   FIN from one side (one-way flows stay here to the end)
//	TimeWait      120 s   FIN from both sides, two-way only
//	Close          10 s   RST
//	UDPUnreplied   30 s   UDP (and other non-TCP) before a reply
//	UDP           300 s   after a reply; one-way UDP flows are always here
//	Persist       per flow (Flow.PersistTimeout seconds)
//
// The TCP transitions are listed at tcpNext: two-way (full NAT) flows need
// SYN, SYN-ACK from the reply side and the client's ACK to become
// established; one-way (DSR, IPIP) flows see only the client and become
// established on its ACK after its SYN, as IPVS does in DR mode.
//
// # Iteration and HA
//
// Range copies live flows out 64 at a time inside a private Reader
// bracket and calls its function outside it. A Record (flow, state,
// remaining time) is what an HA peer needs: Import installs it, refreshes
// an identical flow in place, or replaces a different one holding the
// same keys. Streaming changes as they happen (rather than bulk Range)
// needs a change feed, which this package does not have yet.
package conntrack
