package flowsync

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"hash"
	"strconv"
)

// Wire constants. A message is a header, a body that depends on its Type,
// and an HMAC-SHA256 trailer; see the package documentation for the
// layouts.
const (
	// Magic opens every message: "CLVS", Culvert sync.
	Magic uint32 = 0x434c5653
	// Version is the protocol version this package speaks.
	Version = 1
	// HeaderSize is the size of the fixed header.
	HeaderSize = 32
	// MACSize is the size of the HMAC-SHA256 trailer.
	MACSize = sha256.Size
	// MinKeySize is the shortest pre-shared key accepted.
	MinKeySize = 16
	// DefaultMaxMessageSize is the default largest datagram sent: under
	// a 1500-byte MTU with room for IPv6 and a tunnel header.
	DefaultMaxMessageSize = 1400
	// MinMessageSize is the smallest Config.MaxMessageSize: one bulk
	// Update of one record.
	MinMessageSize = HeaderSize + bulkPrefixSize + RecordSize + MACSize
	// MaxMessageSize is the largest Config.MaxMessageSize: the largest
	// UDP payload over IPv4.
	MaxMessageSize = 65507
)

// Type is a message type.
type Type uint8

// Message types. Type 0 is never sent.
const (
	// TypeUpdate carries Count records. With the bulk flag its body starts
	// with the request ID and first sequence number of the bulk transfer
	// it belongs to.
	TypeUpdate Type = 1 + iota
	// TypeBulkRequest asks the peer to send its whole table.
	TypeBulkRequest
	// TypeBulkEnd says the sender finished walking its table for a
	// request.
	TypeBulkEnd
	// TypeHeartbeat is sent periodically; it acknowledges what the sender
	// has received from the peer.
	TypeHeartbeat
	// TypeNack names Updates of the receiver's epoch that did not arrive
	// (Count ranges of sequence numbers); the receiver of the Nack sends
	// them again, byte for byte, if it still has them.
	TypeNack
	numTypes
)

func (t Type) String() string {
	switch t {
	case TypeUpdate:
		return "update"
	case TypeBulkRequest:
		return "bulk-request"
	case TypeBulkEnd:
		return "bulk-end"
	case TypeHeartbeat:
		return "heartbeat"
	case TypeNack:
		return "nack"
	}
	return "type(" + strconv.Itoa(int(t)) + ")"
}

// Header flags.
const (
	flagBulk   = 1 << 0 // Update: part of a bulk transfer, body starts with a bulk prefix
	flagSynced = 1 << 1 // Heartbeat: the sender has completed a bulk resync from the receiver
)

// Offsets in the header.
const (
	hMagic   = 0
	hVersion = 4
	hType    = 5
	hFlags   = 6
	hRsvd1   = 7 // reserved, zero
	hCount   = 8
	hRsvd2   = 10 // reserved, zero (2 bytes)
	hNode    = 12
	hEpoch   = 16
	hSeq     = 24
)

// Body sizes and offsets (from the start of the body).
const (
	bulkPrefixSize  = 16 // Update with flagBulk: request ID, reserved, first sequence
	bulkRequestSize = 8  // request ID, reserved
	bulkEndSize     = 24 // request ID, reserved, first sequence, records
	heartbeatSize   = 16 // ack epoch, ack sequence
	nackPrefixSize  = 8  // the epoch the ranges are of
	nackRangeSize   = 16 // first sequence, number, reserved
	// maxNackRanges bounds the ranges of one Nack.
	maxNackRanges = 16

	bRequest   = 0 // request ID, all bulk bodies
	bRsvd      = 4 // reserved, zero
	bFirstSeq  = 8 // bulk prefix and BulkEnd
	bRecords   = 16
	bAckEpoch  = 0
	bAckSeq    = 8
	bNackEpoch = 0 // Nack; then ranges from nackPrefixSize:
	rFirst     = 0 // in a Nack range
	rNumber    = 8
	rRsvd      = 12
)

// header is a decoded message header.
type header struct {
	typ   Type
	flags uint8
	count int
	node  uint32
	epoch uint64
	seq   uint64
}

// readHeader decodes the header fields of b (at least HeaderSize bytes).
func readHeader(b []byte) header {
	return header{
		typ:   Type(b[hType]),
		flags: b[hFlags],
		count: int(binary.BigEndian.Uint16(b[hCount:])),
		node:  binary.BigEndian.Uint32(b[hNode:]),
		epoch: binary.BigEndian.Uint64(b[hEpoch:]),
		seq:   binary.BigEndian.Uint64(b[hSeq:]),
	}
}

// appendHeader appends a header of type t with flags fl; seal fills in the
// count, node, epoch and sequence.
func appendHeader(b []byte, t Type, fl uint8) []byte {
	b = append(b, make([]byte, HeaderSize)...)
	h := b[len(b)-HeaderSize:]
	binary.BigEndian.PutUint32(h[hMagic:], Magic)
	h[hVersion] = Version
	h[hType] = uint8(t)
	h[hFlags] = fl
	return b
}

func appendBulkPrefix(b []byte, id uint32, first uint64) []byte {
	b = binary.BigEndian.AppendUint32(b, id)
	b = binary.BigEndian.AppendUint32(b, 0)
	return binary.BigEndian.AppendUint64(b, first)
}

func appendBulkRequest(b []byte, id uint32) []byte {
	b = binary.BigEndian.AppendUint32(b, id)
	return binary.BigEndian.AppendUint32(b, 0)
}

func appendBulkEnd(b []byte, id uint32, first, records uint64) []byte {
	b = appendBulkRequest(b, id)
	b = binary.BigEndian.AppendUint64(b, first)
	return binary.BigEndian.AppendUint64(b, records)
}

func appendHeartbeat(b []byte, ackEpoch, ackSeq uint64) []byte {
	b = binary.BigEndian.AppendUint64(b, ackEpoch)
	return binary.BigEndian.AppendUint64(b, ackSeq)
}

// nackRange is a run of sequence numbers: first, first+1, ... n of them.
type nackRange struct {
	first uint64
	n     uint32
}

func appendNack(b []byte, epoch uint64, rs []nackRange) []byte {
	b = binary.BigEndian.AppendUint64(b, epoch)
	for _, r := range rs {
		b = binary.BigEndian.AppendUint64(b, r.first)
		b = binary.BigEndian.AppendUint32(b, r.n)
		b = binary.BigEndian.AppendUint32(b, 0)
	}
	return b
}

// newMAC returns the message authenticator for key.
func newMAC(key []byte) hash.Hash { return hmac.New(sha256.New, key) }

// sealer stamps and authenticates outgoing messages. It is not safe for
// concurrent use; the Endpoint guards its sealer with sendMu.
type sealer struct {
	mac   hash.Hash
	node  uint32
	epoch uint64
	seq   uint64 // the last sequence number used; 0 before the first message
}

// seal completes the message b (a header from appendHeader, then the body)
// with count, node, epoch and the next sequence number, and appends the
// MAC. It allocates nothing when cap(b) >= len(b)+MACSize.
func (s *sealer) seal(b []byte, count int) []byte {
	s.seq++
	binary.BigEndian.PutUint16(b[hCount:], uint16(count))
	binary.BigEndian.PutUint32(b[hNode:], s.node)
	binary.BigEndian.PutUint64(b[hEpoch:], s.epoch)
	binary.BigEndian.PutUint64(b[hSeq:], s.seq)
	s.mac.Reset()
	s.mac.Write(b)
	return s.mac.Sum(b)
}
