package flowsync

import (
	"sync/atomic"
	"time"
)

// counters are an Endpoint's statistics. Each is written by the goroutine
// named and read by Stats at any time.
type counters struct {
	msgsSent, recsSent atomic.Uint64 // sender (under sendMu)
	sendErrors         atomic.Uint64 // sender
	msgsRecv, recsRecv atomic.Uint64 // receive goroutine
	recvErrors         atomic.Uint64 // receive goroutine
	rejected           [NumRejectReasons]atomic.Uint64
	imported           atomic.Uint64 // receive goroutine
	importErrors       atomic.Uint64 // receive goroutine
	gaps, late         atomic.Uint64 // receive goroutine
	nacksSent          atomic.Uint64 // receive goroutine
	nacksRecv          atomic.Uint64 // receive goroutine
	resent             atomic.Uint64 // receive goroutine (under sendMu)
	resendMisses       atomic.Uint64 // receive goroutine (under sendMu)

	bulkReqSent      atomic.Uint64 // under syncMu
	bulkIncomplete   atomic.Uint64 // under syncMu
	lastBulkDuration atomic.Int64  // under syncMu
	lastBulkRecords  atomic.Uint64 // under syncMu

	bulkServed         atomic.Uint64 // bulk goroutine
	lastServedDuration atomic.Int64  // bulk goroutine
	lastServedRecords  atomic.Uint64 // bulk goroutine

	epoch      atomic.Uint64 // our epoch (under sendMu)
	seq        atomic.Uint64 // our last sequence number (under sendMu)
	epochBumps atomic.Uint64 // under sendMu

	peerNode     atomic.Uint32 // receive goroutine
	peerEpoch    atomic.Uint64 // receive goroutine
	peerSeq      atomic.Uint64 // receive goroutine: highest sequence accepted
	peerAckEpoch atomic.Uint64 // receive goroutine, from heartbeats
	peerAckSeq   atomic.Uint64 // receive goroutine, from heartbeats
	peerSynced   atomic.Bool   // receive goroutine, from heartbeats
	lastRecv     atomic.Int64  // receive goroutine: Unix ns of the last accepted message
}

// Snapshot is an Endpoint's state and counters at one moment, for
// `culvert show sync` and Prometheus. Counters only grow for the life of
// the Endpoint. The fields are read one at a time, so two fields may be a
// few messages apart.
type Snapshot struct {
	Node  uint32 // our node ID
	Epoch uint64 // our epoch (Config.Epoch, or a later one after EpochBumps)
	Seq   uint64 // our last sequence number sent in Epoch

	MessagesSent, RecordsSent uint64 // written to the socket (a test drop hook counts as sent)
	SendErrors                uint64 // messages the socket refused or timed out on; dropped

	MessagesReceived, RecordsReceived uint64                   // accepted
	ReceiveErrors                     uint64                   // socket read errors
	Rejected                          [NumRejectReasons]uint64 // by RejectReason; RejectNone stays 0
	Imported, ImportErrors            uint64                   // Importer.Import returned nil / an error

	// Gaps counts the sequence numbers skipped when a message arrived
	// ahead of its predecessors; Late counts those that arrived after
	// all. Gaps - Late is the number of messages lost (or still in
	// flight).
	Gaps, Late uint64
	// NacksSent counts the Nacks we sent for missing messages of the
	// peer's; NacksReceived those the peer sent us. Resent counts the
	// messages we sent again for them, ResendMisses those asked for that
	// we no longer held (or never sent).
	NacksSent, NacksReceived, Resent, ResendMisses uint64

	// Synced: a bulk resync from the peer completed with no message
	// missing, and no resync has been needed since.
	Synced           bool
	BulkRequestsSent uint64        // BulkRequest messages, retries included
	BulkIncomplete   uint64        // bulk transfers abandoned for a lost message, count mismatch or peer restart
	LastBulkDuration time.Duration // request to completion of the last complete resync
	LastBulkRecords  uint64        // records of that resync

	BulkRequestsServed uint64        // bulk transfers we completed for the peer
	LastServedDuration time.Duration // of the last one
	LastServedRecords  uint64

	// EpochBumps counts how often we moved to a larger epoch because the
	// peer acknowledged one of ours larger than Epoch (a wall clock that
	// went back across our restart).
	EpochBumps uint64

	PeerNode  uint32 // node ID of the last accepted message
	PeerEpoch uint64 // the peer's current epoch; 0 before the first accepted message
	PeerSeq   uint64 // highest sequence number accepted in PeerEpoch
	// PeerAckEpoch and PeerAckSeq are what the peer last said it has
	// accepted from us; PeerSynced whether it has a complete copy of our
	// table. All from its heartbeats.
	PeerAckEpoch, PeerAckSeq uint64
	PeerSynced               bool

	LastReceived time.Time     // of the last accepted message; zero if none
	Lag          time.Duration // since LastReceived, at the Snapshot; zero if none

}

// Stats returns a Snapshot. Safe from any goroutine; it allocates
// nothing.
func (e *Endpoint) Stats() Snapshot {
	c := &e.stats
	s := Snapshot{
		Node:               e.cfg.Node,
		Epoch:              c.epoch.Load(),
		Seq:                c.seq.Load(),
		MessagesSent:       c.msgsSent.Load(),
		RecordsSent:        c.recsSent.Load(),
		SendErrors:         c.sendErrors.Load(),
		MessagesReceived:   c.msgsRecv.Load(),
		RecordsReceived:    c.recsRecv.Load(),
		ReceiveErrors:      c.recvErrors.Load(),
		Imported:           c.imported.Load(),
		ImportErrors:       c.importErrors.Load(),
		Gaps:               c.gaps.Load(),
		Late:               c.late.Load(),
		NacksSent:          c.nacksSent.Load(),
		NacksReceived:      c.nacksRecv.Load(),
		Resent:             c.resent.Load(),
		ResendMisses:       c.resendMisses.Load(),
		Synced:             e.synced.Load(),
		BulkRequestsSent:   c.bulkReqSent.Load(),
		BulkIncomplete:     c.bulkIncomplete.Load(),
		LastBulkDuration:   time.Duration(c.lastBulkDuration.Load()),
		LastBulkRecords:    c.lastBulkRecords.Load(),
		BulkRequestsServed: c.bulkServed.Load(),
		LastServedDuration: time.Duration(c.lastServedDuration.Load()),
		LastServedRecords:  c.lastServedRecords.Load(),
		EpochBumps:         c.epochBumps.Load(),
		PeerNode:           c.peerNode.Load(),
		PeerEpoch:          c.peerEpoch.Load(),
		PeerSeq:            c.peerSeq.Load(),
		PeerAckEpoch:       c.peerAckEpoch.Load(),
		PeerAckSeq:         c.peerAckSeq.Load(),
		PeerSynced:         c.peerSynced.Load(),
	}
	for i := range s.Rejected {
		s.Rejected[i] = c.rejected[i].Load()
	}
	if ns := c.lastRecv.Load(); ns != 0 {
		s.LastReceived = time.Unix(0, ns)
		s.Lag = time.Since(s.LastReceived)
	}
	return s
}
