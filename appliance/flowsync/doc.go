// Package flowsync replicates the connection table between the two
// appliances of an HA pair, in the spirit of the IPVS sync daemon and
// conntrackd: the master streams every flow change to the backup, so that
// established flows, including full-NAT flows whose SNAT port mapping lives
// only in the appliance, survive a failover.
//
// This package is the protocol and its transport, from "a batch of Records
// to send" to "a Record received and authenticated, handed to an
// Importer". The dataplane side (queues of changes, conversion between
// conntrack flows and Records, importing into the table) and the daemon
// wiring live elsewhere.
//
// # Model
//
// Each appliance runs one Endpoint: a UDP socket bound to a local address,
// sending to the peer's. Both sides are alike; the daemon calls Send on
// the master with the changes the dataplane queued, and both sides import
// what they receive. Send packs records into Update messages of up to
// Config.MaxMessageSize bytes and writes each as it fills; the rest goes
// out within Config.FlushInterval.
//
// Lost messages are asked for again. A receiver learns of a loss when a
// later message arrives (a heartbeat at the latest) and sends a Nack
// naming the missing sequence numbers at once; each one still missing is
// named again 25 ms after the last Nack that named it, looked for as
// messages arrive, by six Nacks at most. The sender keeps the last 2048
// messages it sent (4 MiB at most, fewer when messages are large) and
// writes the named ones again byte for byte: same sequence number and MAC,
// so the replay window takes each once, and only while it is in the
// window. A message that arrives after later ones (resent, or overtaken)
// fills its place in the window; its records go to the Importer's
// ImportLate (LateImporter) so that an old record does not undo a newer
// one, and a late heartbeat or Nack is not acted on. An Update lost for
// good (out of the window, or out of the sender's history) loses those
// changes until the dataplane's periodic refresh walk sends them again.
//
// A node that starts, sees the peer restart (a larger epoch), or finds a
// transfer incomplete asks for a bulk resync: a BulkRequest with a new ID,
// repeated every Config.BulkRetry until the matching BulkEnd arrives. The
// peer walks its table (Config.Walk) and streams it in bulk Updates, paced
// to Config.BulkRate records a second, then sends a BulkEnd with the
// sequence number the transfer began at and its record count. The
// transfer is complete when every message the peer sent from that
// sequence number to the BulkEnd arrived (live Updates sent meanwhile
// included) and the counts agree; Synced then turns true. While a message
// of the transfer is missing but asked for again, the BulkEnd waits for it
// (up to Config.BulkRetry); a message lost for good abandons the transfer
// as soon as the replay window shows it, and a new request starts. A resync adds and refreshes flows; it
// does not remove those the peer no longer has (they expire on their own
// timeouts).
//
// # Security
//
// Every message carries an HMAC-SHA256 over header and body, keyed with
// the pre-shared Config.Key; it is verified (constant time) before any
// field that matters is believed. Replays are refused by epoch and
// sequence number: each run of a sender has an epoch (its start time in
// Unix nanoseconds, so a restart moves it forward) and numbers its
// messages 1, 2, 3... within it. A receiver keeps the peer's current epoch
// and a window of the last 2048 sequence numbers, as IPsec does (RFC 4303
// section 3.4.3); a larger epoch is a restart and resets the window. A
// sender whose clock went back across a restart is told so by the peer's
// heartbeats, which acknowledge the epoch they have seen, and moves past
// it. Nothing is encrypted: flow tuples cross the sync link in clear.
//
// A receiver that restarts forgets the peer's epoch, so until the peer's
// first fresh message it would accept a recorded message of the peer's
// current run. Keep the sync link on a network an attacker cannot inject
// into, as with VRRP itself.
//
// # Wire format
//
// One message per UDP datagram. All integers are big endian.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                        Magic ("CLVS")                         |   0
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|    Version    |     Type      |   Flags   |S|B|   Reserved    |   4
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|             Count             |           Reserved            |   8
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                            Node ID                            |  12
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |  16
//	+                         Epoch (64 bits)                       +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |  24
//	+                       Sequence (64 bits)                      +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                     Body (depends on Type)                    |  32
//	~                                                               ~
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	~           HMAC-SHA256 of everything above (32 bytes)          ~
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Version is 1. Count is the number of records (Update) and zero
// otherwise. Flags: B (bit 0) on an Update marks a bulk transfer; S (bit
// 1) on a Heartbeat says the sender has completed a resync from the
// receiver; other bits and the reserved fields are zero. Node ID names the
// sender; Epoch and Sequence are described under Security.
//
// Bodies, by Type:
//
//	Update (1)        [bulk prefix, with flag B] Count × Record (RecordSize bytes each, see Record.Append)
//	BulkRequest (2)   Request ID (32) | Reserved (32)
//	BulkEnd (3)       Request ID (32) | Reserved (32) | First Sequence (64) | Records (64)
//	Heartbeat (4)     Ack Epoch (64) | Ack Sequence (64)
//	Nack (5)          Epoch (64) | Count × (First Sequence (64) | Number (32) | Reserved (32))
//	bulk prefix       Request ID (32) | Reserved (32) | First Sequence (64)
//
// First Sequence is the sequence number the sender's transfer for Request
// ID began at: from it to the BulkEnd, every message the sender sent
// counts for the transfer. Ack Epoch and Ack Sequence are the epoch and
// highest sequence number the heartbeat's sender has accepted from the
// receiver. A Nack's Epoch is the receiver's, whose messages it names; its
// Count (1 to 16) is the number of ranges, each of Number (1 to 2048)
// sequence numbers from First Sequence on.
//
// # Receive checks
//
// In order, each failure counted by its RejectReason: shorter than header
// and MAC (RejectShort); magic (RejectMagic); version (RejectVersion);
// length against type, count and flags (RejectLength); MAC (RejectMAC);
// our own node ID (RejectLoop); an epoch below the peer's current one
// (RejectStaleEpoch); a sequence number seen, zero, or older than the
// window (RejectReplay); an unknown type (RejectType); a nonzero reserved
// field, unknown flag or undecodable record (RejectMalformed). A message
// rejected for any reason changes no state. Nothing here panics on any
// input (FuzzReceive).
//
// # Allocation and locking
//
// Send, the sealing and writing of messages, the receive path through
// verification and decoding, Nacks and resending allocate nothing
// (TestNoAllocs). Send takes
// the send lock once per message it writes; no dataplane worker ever
// calls into this package.
package flowsync
