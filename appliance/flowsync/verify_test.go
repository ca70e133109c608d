package flowsync

import (
	"bytes"
	"encoding/binary"
	"math"
	"slices"
	"testing"
)

// Message builders for tests: each seals with the next sequence number.

func newSealer(key []byte, node uint32, epoch uint64) *sealer {
	return &sealer{mac: newMAC(key), node: node, epoch: epoch}
}

func (s *sealer) update(rs []Record) []byte {
	b := appendHeader(nil, TypeUpdate, 0)
	for i := range rs {
		b = rs[i].Append(b)
	}
	return s.seal(b, len(rs))
}

func (s *sealer) bulkUpdate(id uint32, first uint64, rs []Record) []byte {
	b := appendBulkPrefix(appendHeader(nil, TypeUpdate, flagBulk), id, first)
	for i := range rs {
		b = rs[i].Append(b)
	}
	return s.seal(b, len(rs))
}

func (s *sealer) bulkRequest(id uint32) []byte {
	return s.seal(appendBulkRequest(appendHeader(nil, TypeBulkRequest, 0), id), 0)
}

func (s *sealer) bulkEnd(id uint32, first, n uint64) []byte {
	return s.seal(appendBulkEnd(appendHeader(nil, TypeBulkEnd, 0), id, first, n), 0)
}

func (s *sealer) heartbeat(fl uint8, ackEpoch, ackSeq uint64) []byte {
	return s.seal(appendHeartbeat(appendHeader(nil, TypeHeartbeat, fl), ackEpoch, ackSeq), 0)
}

func (s *sealer) nack(epoch uint64, rs ...nackRange) []byte {
	return s.seal(appendNack(appendHeader(nil, TypeNack, 0), epoch, rs), len(rs))
}

// raw seals an arbitrary header-and-body (edit may change any byte
// first, count included: seal keeps count only if count >= 0).
func (s *sealer) raw(t Type, fl uint8, body []byte, edit func(b []byte)) []byte {
	b := append(appendHeader(nil, t, fl), body...)
	s.seq++
	binary.BigEndian.PutUint32(b[hNode:], s.node)
	binary.BigEndian.PutUint64(b[hEpoch:], s.epoch)
	binary.BigEndian.PutUint64(b[hSeq:], s.seq)
	if edit != nil {
		edit(b)
	}
	s.mac.Reset()
	s.mac.Write(b)
	return s.mac.Sum(b)
}

const (
	self = 1
	peer = 2
)

func mustAccept(t *testing.T, o *opener, b []byte) header {
	t.Helper()
	h, why := o.check(b)
	if why != RejectNone {
		t.Fatalf("check: %v, want accepted", why)
	}
	o.commit(h)
	return h
}

func TestCheckAccepts(t *testing.T) {
	s := newSealer(testKey, peer, 1000)
	tests := []struct {
		name  string
		b     []byte
		typ   Type
		flags uint8
		count int
	}{
		{"update", s.update(recs(3)), TypeUpdate, 0, 3},
		{"bulk update", s.bulkUpdate(7, 1, recs(8)), TypeUpdate, flagBulk, 8},
		{"bulk request", s.bulkRequest(7), TypeBulkRequest, 0, 0},
		{"bulk end", s.bulkEnd(7, 2, 8), TypeBulkEnd, 0, 0},
		{"heartbeat", s.heartbeat(flagSynced, 5, 6), TypeHeartbeat, flagSynced, 0},
		{"heartbeat unsynced", s.heartbeat(0, 0, 0), TypeHeartbeat, 0, 0},
		{"nack", s.nack(9, nackRange{1, 1}, nackRange{5, windowSize}), TypeNack, 0, 2},
		{"nack, most ranges", s.nack(9, slices.Repeat([]nackRange{{3, 2}}, maxNackRanges)...), TypeNack, 0, maxNackRanges},
	}
	o := newOpener(testKey, self)
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := mustAccept(t, o, tt.b)
			want := header{typ: tt.typ, flags: tt.flags, count: tt.count, node: peer, epoch: 1000, seq: uint64(i + 1)}
			if h != want {
				t.Fatalf("header %+v, want %+v", h, want)
			}
		})
	}
}

func TestCheckRejects(t *testing.T) {
	s := newSealer(testKey, peer, 1000)
	valid := s.heartbeat(0, 0, 0)
	tests := []struct {
		name string
		b    []byte
		want RejectReason
	}{
		{"empty", nil, RejectShort},
		{"header only", valid[:HeaderSize], RejectShort},
		{"one short", valid[:HeaderSize+MACSize-1], RejectShort},
		{"magic", func() []byte { b := bytes.Clone(valid); b[0] ^= 1; return b }(), RejectMagic},
		{"version 0", s.raw(TypeHeartbeat, 0, make([]byte, heartbeatSize), func(b []byte) { b[hVersion] = 0 }), RejectVersion},
		{"version 2", s.raw(TypeHeartbeat, 0, make([]byte, heartbeatSize), func(b []byte) { b[hVersion] = 2 }), RejectVersion},
		{"heartbeat long", s.raw(TypeHeartbeat, 0, make([]byte, heartbeatSize+1), nil), RejectLength},
		{"heartbeat with count", s.raw(TypeHeartbeat, 0, make([]byte, heartbeatSize), func(b []byte) { b[hCount+1] = 1 }), RejectLength},
		{"bulk request short", s.raw(TypeBulkRequest, 0, make([]byte, bulkRequestSize-1), nil), RejectLength},
		{"bulk end long", s.raw(TypeBulkEnd, 0, make([]byte, bulkEndSize+8), nil), RejectLength},
		{"update count too high", s.raw(TypeUpdate, 0, enc(rec(1), nil), func(b []byte) { b[hCount+1] = 2 }), RejectLength},
		{"update count zero", s.raw(TypeUpdate, 0, nil, nil), RejectLength},
		{"update partial record", s.raw(TypeUpdate, 0, enc(rec(1), nil)[:RecordSize-1], func(b []byte) { b[hCount+1] = 1 }), RejectLength},
		{"bulk update without prefix", s.raw(TypeUpdate, flagBulk, enc(rec(1), nil), func(b []byte) { b[hCount+1] = 1 }), RejectLength},
		{"wrong key", newSealer([]byte("another key of 16+ bytes"), peer, 1000).heartbeat(0, 0, 0), RejectMAC},
		{"body bit flipped", func() []byte { b := s.update(recs(1)); b[HeaderSize+40] ^= 0x10; return b }(), RejectMAC},
		{"mac bit flipped", func() []byte { b := s.heartbeat(0, 0, 0); b[len(b)-1] ^= 1; return b }(), RejectMAC},
		{"header bit flipped", func() []byte { b := s.heartbeat(0, 0, 0); b[hSeq+7] ^= 1; return b }(), RejectMAC},
		{"looped", newSealer(testKey, self, 1000).heartbeat(0, 0, 0), RejectLoop},
		{"looped even with an old epoch", newSealer(testKey, self, 1).heartbeat(0, 0, 0), RejectLoop},
		{"sequence zero", s.raw(TypeHeartbeat, 0, make([]byte, heartbeatSize), func(b []byte) { binary.BigEndian.PutUint64(b[hSeq:], 0) }), RejectReplay},
		{"type zero", s.raw(0, 0, nil, nil), RejectType},
		{"type unknown", s.raw(numTypes, 0, []byte("future body"), nil), RejectType},
		{"type 255", s.raw(255, 0, nil, func(b []byte) { b[hCount+1] = 9 }), RejectType},
		{"reserved byte", s.raw(TypeHeartbeat, 0, make([]byte, heartbeatSize), func(b []byte) { b[hRsvd1] = 1 }), RejectMalformed},
		{"reserved count half", s.raw(TypeHeartbeat, 0, make([]byte, heartbeatSize), func(b []byte) { b[hRsvd2+1] = 1 }), RejectMalformed},
		{"unknown flag", s.raw(TypeHeartbeat, 0x80, make([]byte, heartbeatSize), nil), RejectMalformed},
		{"bulk flag on heartbeat", s.raw(TypeHeartbeat, flagBulk, make([]byte, heartbeatSize), nil), RejectMalformed},
		{"synced flag on update", s.raw(TypeUpdate, flagSynced, enc(rec(1), nil), func(b []byte) { b[hCount+1] = 1 }), RejectMalformed},
		{"bad record", s.raw(TypeUpdate, 0, func() []byte { b := enc(rec(1), nil); b[rFamilies] = 7; return b }(), func(b []byte) { b[hCount+1] = 1 }), RejectMalformed},
		{"second record bad", s.raw(TypeUpdate, 0, func() []byte {
			b := enc(rec(1), nil)
			b = enc(rec(2), b)
			b[RecordSize+rKind] = 9
			return b
		}(), func(b []byte) { b[hCount+1] = 2 }), RejectMalformed},
		{"bulk request reserved", s.raw(TypeBulkRequest, 0, []byte{0, 0, 0, 1, 0, 0, 0, 1}, nil), RejectMalformed},
		{"bulk end first zero", s.raw(TypeBulkEnd, 0, appendBulkEnd(nil, 1, 0, 0), nil), RejectMalformed},
		{"bulk end first after itself", s.raw(TypeBulkEnd, 0, appendBulkEnd(nil, 1, 1<<40, 0), nil), RejectMalformed},
		{"bulk end reserved", s.raw(TypeBulkEnd, 0, func() []byte { b := appendBulkEnd(nil, 1, 1, 0); b[bRsvd] = 1; return b }(), nil), RejectMalformed},
		{"nack without ranges", s.raw(TypeNack, 0, appendNack(nil, 9, nil), nil), RejectLength},
		{"nack with too many ranges", s.raw(TypeNack, 0, appendNack(nil, 9, slices.Repeat([]nackRange{{1, 1}}, maxNackRanges+1)),
			func(b []byte) { b[hCount+1] = maxNackRanges + 1 }), RejectLength},
		{"nack count beyond the body", s.raw(TypeNack, 0, appendNack(nil, 9, []nackRange{{1, 1}}), func(b []byte) { b[hCount+1] = 2 }), RejectLength},
		{"nack of epoch zero", s.raw(TypeNack, 0, appendNack(nil, 0, []nackRange{{1, 1}}), func(b []byte) { b[hCount+1] = 1 }), RejectMalformed},
		{"nack of sequence zero", s.raw(TypeNack, 0, appendNack(nil, 9, []nackRange{{0, 1}}), func(b []byte) { b[hCount+1] = 1 }), RejectMalformed},
		{"nack of no messages", s.raw(TypeNack, 0, appendNack(nil, 9, []nackRange{{1, 0}}), func(b []byte) { b[hCount+1] = 1 }), RejectMalformed},
		{"nack wider than the window", s.raw(TypeNack, 0, appendNack(nil, 9, []nackRange{{1, windowSize + 1}}), func(b []byte) { b[hCount+1] = 1 }), RejectMalformed},
		{"nack range wrapping", s.raw(TypeNack, 0, appendNack(nil, 9, []nackRange{{math.MaxUint64, 2}}), func(b []byte) { b[hCount+1] = 1 }), RejectMalformed},
		{"nack reserved", s.raw(TypeNack, 0, func() []byte {
			b := appendNack(nil, 9, []nackRange{{1, 1}, {3, 1}})
			b[nackPrefixSize+nackRangeSize+rRsvd] = 1
			return b
		}(), func(b []byte) { b[hCount+1] = 2 }), RejectMalformed},
		{"bulk prefix first after itself", s.raw(TypeUpdate, flagBulk, enc(rec(1), appendBulkPrefix(nil, 1, 1<<40)), func(b []byte) { b[hCount+1] = 1 }), RejectMalformed},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			o := newOpener(testKey, self)
			if _, why := o.check(tt.b); why != tt.want {
				t.Fatalf("check = %v, want %v", why, tt.want)
			}
			if o.epoch != 0 || o.win != (window{}) {
				t.Fatalf("a rejected message changed the state: epoch %d window %+v", o.epoch, o.win)
			}
		})
	}
}

func TestReplayRejected(t *testing.T) {
	s := newSealer(testKey, peer, 1000)
	o := newOpener(testKey, self)
	m1, m2, m3 := s.update(recs(1)), s.heartbeat(0, 0, 0), s.bulkRequest(1)
	mustAccept(t, o, m1)
	mustAccept(t, o, m3) // m2 is late
	for _, b := range [][]byte{m1, m3} {
		if _, why := o.check(b); why != RejectReplay {
			t.Fatalf("replay: %v, want %v", why, RejectReplay)
		}
	}
	mustAccept(t, o, m2) // reordered, within the window: accepted once
	if _, why := o.check(m2); why != RejectReplay {
		t.Fatalf("second copy of a late message: %v", why)
	}
}

func TestWindowEdge(t *testing.T) {
	s := newSealer(testKey, peer, 1000)
	o := newOpener(testKey, self)
	msgs := make([][]byte, windowSize+1)
	for i := range msgs {
		msgs[i] = s.heartbeat(0, 0, 0) // sequence i+1
	}
	mustAccept(t, o, msgs[1])          // sequence 2
	mustAccept(t, o, msgs[windowSize]) // sequence windowSize+1 is top
	// Sequence 1 is windowSize behind top: too old, though never seen.
	if _, why := o.check(msgs[0]); why != RejectReplay {
		t.Fatalf("sequence 1 (windowSize behind): %v, want replay", why)
	}
	// Sequence 3 is windowSize-2 behind: a late arrival, accepted.
	mustAccept(t, o, msgs[2])
	// Sequence 4 was never seen and is windowSize-3 behind: acceptable.
	if _, why := o.check(msgs[3]); why != RejectNone {
		t.Fatalf("sequence 4: %v", why)
	}
}

func TestRestartedPeer(t *testing.T) {
	o := newOpener(testKey, self)
	old := newSealer(testKey, peer, 1000)
	var oldMsgs [][]byte
	for range 5 {
		b := old.heartbeat(0, 0, 0)
		oldMsgs = append(oldMsgs, b)
		mustAccept(t, o, b)
	}
	pending := old.update(recs(1)) // sent by the old run, delivered after the restart

	restarted := newSealer(testKey, peer, 2000) // numbers from 1 again
	b := restarted.heartbeat(0, 0, 0)
	h, why := o.check(b)
	if why != RejectNone {
		t.Fatalf("restarted peer's first message: %v", why)
	}
	newEpoch, skipped, late := o.commit(h)
	if !newEpoch || skipped != 0 || late {
		t.Fatalf("commit = %v %d %v, want a new epoch and no gap", newEpoch, skipped, late)
	}
	if o.epoch != 2000 || o.win.top != 1 || o.win.base != 1 {
		t.Fatalf("window not reset: epoch %d %+v", o.epoch, o.win)
	}
	mustAccept(t, o, restarted.heartbeat(0, 0, 0))
	for i, b := range append(oldMsgs, pending) {
		if _, why := o.check(b); why != RejectStaleEpoch {
			t.Fatalf("old run's message %d: %v, want %v", i, why, RejectStaleEpoch)
		}
	}
	if _, why := o.check(b); why != RejectReplay {
		t.Fatalf("restarted run's first message again: %v, want %v", why, RejectReplay)
	}
}

func TestStaleEpochRejected(t *testing.T) {
	o := newOpener(testKey, self)
	mustAccept(t, o, newSealer(testKey, peer, 2000).heartbeat(0, 0, 0))
	stale := newSealer(testKey, peer, 1999)
	stale.seq = 1 << 40 // a high sequence number does not help
	if _, why := o.check(stale.update(recs(2))); why != RejectStaleEpoch {
		t.Fatalf("stale epoch: %v", why)
	}
}

func TestTruncatedRejected(t *testing.T) {
	s := newSealer(testKey, peer, 1000)
	msgs := map[string][]byte{
		"update":       s.update(recs(8)),
		"bulk update":  s.bulkUpdate(3, 1, recs(2)),
		"bulk request": s.bulkRequest(3),
		"bulk end":     s.bulkEnd(3, 1, 2),
		"heartbeat":    s.heartbeat(0, 1, 2),
	}
	for name, b := range msgs {
		t.Run(name, func(t *testing.T) {
			o := newOpener(testKey, self)
			for n := range len(b) {
				_, why := o.check(b[:n])
				switch {
				case why == RejectNone:
					t.Fatalf("%d of %d bytes accepted", n, len(b))
				case n < HeaderSize+MACSize && why != RejectShort:
					t.Fatalf("%d bytes: %v, want %v", n, why, RejectShort)
				case n >= HeaderSize+MACSize && why != RejectLength && why != RejectMAC:
					t.Fatalf("%d bytes: %v, want length or mac", n, why)
				}
			}
			if _, why := o.check(b); why != RejectNone {
				t.Fatalf("whole message: %v", why)
			}
		})
	}
}

func TestRejectReasonString(t *testing.T) {
	seen := map[string]bool{}
	for r := range NumRejectReasons {
		s := r.String()
		if s == "" || seen[s] || s == "reject-reason(?)" {
			t.Errorf("RejectReason(%d).String() = %q", r, s)
		}
		seen[s] = true
	}
	if got := NumRejectReasons.String(); got != "reject-reason(?)" {
		t.Errorf("out of range: %q", got)
	}
	for ty, want := range map[Type]string{TypeUpdate: "update", TypeBulkRequest: "bulk-request", TypeBulkEnd: "bulk-end", TypeHeartbeat: "heartbeat", 0: "type(0)"} {
		if got := ty.String(); got != want {
			t.Errorf("Type(%d).String() = %q, want %q", ty, got, want)
		}
	}
}
