package flowsync

import (
	"crypto/hmac"
	"encoding/binary"
	"hash"
)

// RejectReason says why a received datagram was rejected. Every rejected
// datagram has exactly one, counted in Snapshot.Rejected.
type RejectReason uint8

// Reject reasons, in the order the receiver checks them. Names (String)
// are stable: they become metric labels.
const (
	RejectNone       RejectReason = iota // accepted
	RejectShort                          // shorter than a header and a MAC
	RejectMagic                          // does not start with Magic
	RejectVersion                        // a protocol version other than Version
	RejectLength                         // length does not match the type, count and flags
	RejectMAC                            // HMAC does not verify: wrong key, corrupted, or forged
	RejectLoop                           // carries our own node ID: looped back
	RejectStaleEpoch                     // an epoch older than the peer's current one: a previous boot, replayed
	RejectReplay                         // a sequence number already seen, or too old for the window
	RejectType                           // authentic, but of a type this version does not know
	RejectMalformed                      // authentic, but a reserved field, flag or record is invalid
	NumRejectReasons
)

var rejectNames = [NumRejectReasons]string{
	"none", "short", "bad-magic", "bad-version", "bad-length", "bad-mac",
	"looped", "stale-epoch", "replay", "unknown-type", "malformed",
}

func (r RejectReason) String() string {
	if r < NumRejectReasons {
		return rejectNames[r]
	}
	return "reject-reason(?)"
}

// opener authenticates received messages and holds the replay state of
// the peer. Not safe for concurrent use: the Endpoint's receive goroutine
// owns its opener.
type opener struct {
	mac   hash.Hash
	sum   []byte // scratch for the computed MAC, cap MACSize
	self  uint32 // our node ID
	epoch uint64 // the peer's current epoch; 0 before the first accepted message
	win   window // replay window of epoch
}

func newOpener(key []byte, self uint32) *opener {
	return &opener{mac: newMAC(key), sum: make([]byte, 0, MACSize), self: self}
}

// check validates the datagram b and returns its header. It changes no
// state: a message is accepted only by a following commit, so a rejected
// one never moves the window or the epoch. The order of the checks is the
// order of RejectReason: cheap framing first, then the MAC, and only then
// the checks that trust the header's contents. A looped-back message is
// told apart before the epoch and window checks, which describe the peer
// and would otherwise misreport it as a replay.
func (o *opener) check(b []byte) (header, RejectReason) {
	if len(b) < HeaderSize+MACSize {
		return header{}, RejectShort
	}
	if binary.BigEndian.Uint32(b[hMagic:]) != Magic {
		return header{}, RejectMagic
	}
	if b[hVersion] != Version {
		return header{}, RejectVersion
	}
	h := readHeader(b)
	body := len(b) - HeaderSize - MACSize
	if !lengthOK(h, body) {
		return h, RejectLength
	}
	o.mac.Reset()
	o.mac.Write(b[:len(b)-MACSize])
	o.sum = o.mac.Sum(o.sum[:0])
	if !hmac.Equal(o.sum, b[len(b)-MACSize:]) {
		return h, RejectMAC
	}
	switch {
	case h.node == o.self:
		return h, RejectLoop
	case h.epoch < o.epoch:
		return h, RejectStaleEpoch
	case h.epoch == o.epoch && !o.win.check(h.seq), h.seq == 0:
		return h, RejectReplay
	case h.typ == 0 || h.typ >= numTypes:
		return h, RejectType
	}
	if !wellFormed(h, b[:len(b)-MACSize]) {
		return h, RejectMalformed
	}
	return h, RejectNone
}

// lengthOK reports whether a body of n bytes fits the header's type, count
// and flags. Unknown types may have any body: they are rejected after the
// MAC, where the reason means something.
func lengthOK(h header, n int) bool {
	switch h.typ {
	case TypeUpdate:
		if h.flags&flagBulk != 0 {
			n -= bulkPrefixSize
		}
		return h.count > 0 && n == h.count*RecordSize
	case TypeBulkRequest:
		return h.count == 0 && n == bulkRequestSize
	case TypeBulkEnd:
		return h.count == 0 && n == bulkEndSize
	case TypeHeartbeat:
		return h.count == 0 && n == heartbeatSize
	case TypeNack:
		return h.count > 0 && h.count <= maxNackRanges && n == nackPrefixSize+h.count*nackRangeSize
	}
	return true
}

// wellFormed checks the fields of the message m (header and body, without
// the MAC) that the MAC vouches for but this version constrains: reserved
// bytes zero, flags known for the type, bulk sequence numbers not after
// the message's own, records decodable, Nack ranges of 1 to windowSize
// nonzero sequence numbers. It makes accepted messages
// canonical: they re-encode to the same bytes.
func wellFormed(h header, m []byte) bool {
	if m[hRsvd1] != 0 || binary.BigEndian.Uint16(m[hRsvd2:]) != 0 {
		return false
	}
	body := m[HeaderSize:]
	var known uint8
	switch h.typ {
	case TypeUpdate:
		known = flagBulk
	case TypeHeartbeat:
		known = flagSynced
	}
	if h.flags&^known != 0 {
		return false
	}
	switch h.typ {
	case TypeUpdate:
		if h.flags&flagBulk != 0 {
			if !bulkOK(body, h.seq) {
				return false
			}
			body = body[bulkPrefixSize:]
		}
		var r Record
		for i := 0; i < len(body); i += RecordSize {
			if r.Decode(body[i:]) != nil {
				return false
			}
		}
	case TypeBulkRequest:
		return binary.BigEndian.Uint32(body[bRsvd:]) == 0
	case TypeBulkEnd:
		return bulkOK(body, h.seq)
	case TypeNack:
		if binary.BigEndian.Uint64(body[bNackEpoch:]) == 0 {
			return false
		}
		for r := body[nackPrefixSize:]; len(r) > 0; r = r[nackRangeSize:] {
			first, n := binary.BigEndian.Uint64(r[rFirst:]), binary.BigEndian.Uint32(r[rNumber:])
			if first == 0 || n == 0 || n > windowSize || first+uint64(n) < first ||
				binary.BigEndian.Uint32(r[rRsvd:]) != 0 {
				return false
			}
		}
	}
	return true
}

// bulkOK checks a bulk prefix or BulkEnd body of a message with sequence
// number seq: reserved zero, first sequence in [1, seq].
func bulkOK(body []byte, seq uint64) bool {
	first := binary.BigEndian.Uint64(body[bFirstSeq:])
	return binary.BigEndian.Uint32(body[bRsvd:]) == 0 && first != 0 && first <= seq
}

// commit accepts the message with header h, which check passed: a newer
// epoch resets the window (the peer restarted; not a replay), then the
// sequence number enters the window. newEpoch reports an epoch change
// (including the first message ever); skipped and late are the window's
// gap accounting.
func (o *opener) commit(h header) (newEpoch bool, skipped uint64, late bool) {
	if h.epoch > o.epoch {
		o.epoch = h.epoch
		o.win = window{}
		newEpoch = true
	}
	skipped, late = o.win.accept(h.seq)
	return newEpoch, skipped, late
}
