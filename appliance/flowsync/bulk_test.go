package flowsync

import (
	"bytes"
	"context"
	"encoding/binary"
	"slices"
	"sync"
	"testing"
	"time"
)

// stepper drives one Endpoint's receive side message by message, as the
// peer, and captures what the Endpoint sends (the drop hook keeps it off
// the wire). Nothing runs in the background unless a test starts it.
type stepper struct {
	t    *testing.T
	e    *Endpoint
	imp  *memImporter
	peer *sealer

	mu   sync.Mutex
	sent [][]byte
}

func newStepper(t *testing.T, walk func(yield func(Record) bool)) *stepper {
	s := &stepper{t: t, imp: newMemImporter(), peer: newSealer(testKey, peer, 5000)}
	c := fastConfig(self)
	c.Importer = s.imp
	c.Walk = walk
	s.e = newEndpoint(t, c)
	s.e.setDrop(func(b []byte) bool {
		s.mu.Lock()
		s.sent = append(s.sent, bytes.Clone(b))
		s.mu.Unlock()
		return true
	})
	return s
}

func (s *stepper) deliver(b []byte) { s.e.receive(b, time.Now()) }

// deliverLater delivers b as if it arrived d from now.
func (s *stepper) deliverLater(b []byte, d time.Duration) { s.e.receive(b, time.Now().Add(d)) }

// nacked returns the ranges of the Nacks sent so far, as first:n pairs,
// and checks they are of the peer's epoch.
func (s *stepper) nacked() [][2]uint64 {
	var out [][2]uint64
	for _, b := range s.sentOf(TypeNack) {
		body := b[HeaderSize : len(b)-MACSize]
		if ep := binary.BigEndian.Uint64(body[bNackEpoch:]); ep != s.peer.epoch {
			s.t.Fatalf("Nack of epoch %d, the peer's is %d", ep, s.peer.epoch)
		}
		for r := body[nackPrefixSize:]; len(r) > 0; r = r[nackRangeSize:] {
			out = append(out, [2]uint64{binary.BigEndian.Uint64(r[rFirst:]), uint64(binary.BigEndian.Uint32(r[rNumber:]))})
		}
	}
	return out
}

// sentOf returns the messages of type ty sent so far.
func (s *stepper) sentOf(ty Type) [][]byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out [][]byte
	for _, b := range s.sent {
		if Type(b[hType]) == ty {
			out = append(out, b)
		}
	}
	return out
}

// request returns the ID of the last BulkRequest sent and how many were.
func (s *stepper) request() (uint32, int) {
	rs := s.sentOf(TypeBulkRequest)
	if len(rs) == 0 {
		s.t.Fatal("no BulkRequest sent")
	}
	return binary.BigEndian.Uint32(rs[len(rs)-1][HeaderSize:]), len(rs)
}

// transfer delivers a bulk transfer of rs for request id, beginning at the
// peer's next sequence number, leaving out the messages skip says, and
// returns the sequence number it began at.
func (s *stepper) transfer(id uint32, rs []Record, skip func(seq uint64) bool) uint64 {
	first, _ := s.transferKeep(id, rs, skip)
	return first
}

// transferKeep is transfer that also returns the messages left out.
func (s *stepper) transferKeep(id uint32, rs []Record, skip func(seq uint64) bool) (uint64, [][]byte) {
	first := s.peer.seq + 1
	var skipped [][]byte
	for len(rs) > 0 {
		k := min(len(rs), 8)
		b := s.peer.bulkUpdate(id, first, rs[:k])
		if skip == nil || !skip(s.peer.seq) {
			s.deliver(b)
		} else {
			skipped = append(skipped, b)
		}
		rs = rs[k:]
	}
	return first, skipped
}

func TestSyncStepByStep(t *testing.T) {
	s := newStepper(t, nil)
	changed := s.e.SyncChanged()
	s.e.RequestBulk()
	id, n := s.request()
	if n != 1 || s.e.Synced() {
		t.Fatalf("%d requests, synced %v", n, s.e.Synced())
	}
	s.deliver(s.peer.heartbeat(0, 0, 0))
	s.deliver(s.peer.update(recs(30)[25:])) // a live update before the transfer
	first := s.transfer(id, recs(24), nil)
	s.deliver(s.peer.update(recs(30)[24:25])) // and one during it
	if s.e.Synced() {
		t.Fatal("synced before the BulkEnd")
	}
	s.deliver(s.peer.bulkEnd(id, first, 24))
	if !s.e.Synced() {
		t.Fatal("not synced after a complete transfer")
	}
	select {
	case <-changed:
	default:
		t.Fatal("SyncChanged not closed")
	}
	st := s.e.Stats()
	if st.LastBulkRecords != 24 || st.BulkIncomplete != 0 || s.imp.len() != 30 || st.Imported != 30 {
		t.Fatalf("last bulk %d, incomplete %d, flows %d, imported %d", st.LastBulkRecords, st.BulkIncomplete, s.imp.len(), st.Imported)
	}
	// A repeated BulkEnd (the peer answering our last repeat) changes nothing.
	s.deliver(s.peer.bulkEnd(id, first, 24))
	if _, n := s.request(); !s.e.Synced() || n != 1 {
		t.Fatalf("repeat BulkEnd: synced %v, %d requests", s.e.Synced(), n)
	}
}

func TestSyncIncomplete(t *testing.T) {
	tests := []struct {
		name string
		run  func(s *stepper, id uint32)
	}{
		{"record count differs", func(s *stepper, id uint32) {
			first := s.transfer(id, recs(24), nil)
			s.deliver(s.peer.bulkEnd(id, first, 25))
		}},
		{"message missing, not sent again", func(s *stepper, id uint32) {
			first := s.transfer(id, recs(24), func(seq uint64) bool { return seq == 3 })
			s.deliver(s.peer.bulkEnd(id, first, 24))
			if _, n := s.request(); n != 1 {
				t.Fatal("asked again while the missing message may still come")
			}
			s.deliverLater(s.peer.bulkEnd(id, first, 24), s.e.cfg.BulkRetry) // the answer to our repeat
		}},
		{"live update missing, not sent again", func(s *stepper, id uint32) {
			first := s.transfer(id, recs(24), nil)
			s.peer.update(recs(1)) // sealed, never delivered
			s.deliver(s.peer.bulkEnd(id, first, 24))
			s.deliverLater(s.peer.bulkEnd(id, first, 24), s.e.cfg.BulkRetry)
		}},
		{"BulkEnd first differs", func(s *stepper, id uint32) {
			first := s.transfer(id, recs(24), nil)
			s.deliver(s.peer.bulkEnd(id, first+1, 24))
		}},
		{"transfer began before we listened", func(s *stepper, id uint32) {
			first := s.transfer(id, recs(24), func(seq uint64) bool { return seq == 1 })
			s.deliver(s.peer.bulkEnd(id, first, 16))
		}},
		{"transfer restarted", func(s *stepper, id uint32) {
			s.transfer(id, recs(8), nil)
			s.transfer(id, recs(8), nil)
		}},
		{"peer restarted", func(s *stepper, id uint32) {
			s.transfer(id, recs(8), nil)
			s.peer = newSealer(testKey, peer, s.peer.epoch+1)
			s.deliver(s.peer.heartbeat(0, 0, 0))
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStepper(t, nil)
			s.e.RequestBulk()
			id, _ := s.request()
			tt.run(s, id)
			next, n := s.request()
			if s.e.Synced() || n != 2 || next != id+1 {
				t.Fatalf("synced %v, %d requests, last %d (first %d): want a new request", s.e.Synced(), n, next, id)
			}
			if st := s.e.Stats(); st.BulkIncomplete != 1 {
				t.Fatalf("BulkIncomplete %d", st.BulkIncomplete)
			}
			// The new request completes normally.
			first := s.transfer(next, recs(8), nil)
			s.deliver(s.peer.bulkEnd(next, first, 8))
			if !s.e.Synced() {
				t.Fatal("not synced after the retry's transfer")
			}
		})
	}
}

// TestNackRepairsTransfer: a message missing from a transfer is named in
// a Nack at once; when it comes again the transfer completes, with no new
// request.
func TestNackRepairsTransfer(t *testing.T) {
	for _, tc := range []struct {
		name     string
		lost     func(seq uint64) bool
		wantNack [][2]uint64
	}{
		{"one", func(seq uint64) bool { return seq == 3 }, [][2]uint64{{3, 1}}},
		{"a run and the last", func(seq uint64) bool { return seq == 2 || seq == 3 || seq == 6 }, [][2]uint64{{2, 2}, {6, 1}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newStepper(t, nil)
			s.e.RequestBulk()
			id, _ := s.request()
			s.deliver(s.peer.heartbeat(0, 0, 0)) // sequence 1
			first, lost := s.transferKeep(id, recs(40), tc.lost)
			s.deliver(s.peer.bulkEnd(id, first, 40)) // names the last one missing
			if got := s.nacked(); !slices.Equal(got, tc.wantNack) {
				t.Fatalf("Nacks name %v, want %v", got, tc.wantNack)
			}
			if s.e.Synced() {
				t.Fatal("synced with messages missing")
			}
			for _, b := range lost {
				s.deliver(b) // sent again, byte for byte
			}
			st := s.e.Stats()
			if _, n := s.request(); !s.e.Synced() || n != 1 || st.BulkIncomplete != 0 || s.imp.len() != 40 {
				t.Fatalf("synced %v, %d requests, %d incomplete, %d flows", s.e.Synced(), n, st.BulkIncomplete, s.imp.len())
			}
			if st.Gaps != st.Late || st.NacksSent != uint64(len(tc.wantNack)) {
				t.Fatalf("gaps %d late %d nacks %d", st.Gaps, st.Late, st.NacksSent)
			}
		})
	}
}

// TestNackRetries: a missing message is named again after nackRetry, by
// at most maxNacks Nacks in all.
func TestNackRetries(t *testing.T) {
	s := newStepper(t, nil)
	s.deliver(s.peer.heartbeat(0, 0, 0))
	s.peer.update(recs(1)) // sequence 2, lost
	s.deliver(s.peer.update(recs(1)))
	for i := range 2 * maxNacks {
		s.deliverLater(s.peer.heartbeat(0, 0, 0), time.Duration(i+1)*nackRetry)
		s.deliverLater(s.peer.heartbeat(0, 0, 0), time.Duration(i+1)*nackRetry) // within nackRetry: no Nack
	}
	got := s.nacked()
	if len(got) != maxNacks || got[0] != [2]uint64{2, 1} || got[maxNacks-1] != got[0] {
		t.Fatalf("Nacks name %v, want {2 1} %d times", got, maxNacks)
	}
}

// TestResend: a Nack of our epoch gets the named messages again, byte
// for byte; what we never sent, or no longer hold, and another epoch's
// do not.
func TestResend(t *testing.T) {
	s := newStepper(t, nil)
	s.e.Send(recs(s.e.maxLive)) // sequence 1
	s.e.sendHeartbeat()         // 2
	s.e.Send(recs(s.e.maxLive)) // 3
	ours := s.e.Stats().Epoch
	sent := slices.Clone(s.sent)
	nack := func(epoch uint64, rs ...nackRange) []byte {
		return s.peer.seal(appendNack(appendHeader(nil, TypeNack, 0), epoch, rs), len(rs))
	}
	again := func() [][]byte {
		s.mu.Lock()
		defer s.mu.Unlock()
		var out [][]byte
		for _, b := range s.sent[len(sent):] {
			if Type(b[hType]) != TypeNack {
				out = append(out, b)
			}
		}
		return out
	}
	s.deliver(nack(ours, nackRange{1, 3}, nackRange{9, 1}))
	s.deliver(nack(ours-1, nackRange{1, 1}))
	if got := again(); len(got) != 3 || !bytes.Equal(got[0], sent[0]) || !bytes.Equal(got[1], sent[1]) || !bytes.Equal(got[2], sent[2]) {
		t.Fatalf("%d messages sent again, want sequence 1 to 3 as first sent", len(got))
	}
	if st := s.e.Stats(); st.NacksReceived != 2 || st.Resent != 3 || st.ResendMisses != 1 {
		t.Fatalf("nacks %d resent %d misses %d, want 2 3 1", st.NacksReceived, st.Resent, st.ResendMisses)
	}
	// Once the history has moved on, sequence 1 is gone.
	for range len(s.e.hist) {
		s.e.Send(recs(s.e.maxLive))
	}
	s.deliver(nack(ours, nackRange{1, 1}))
	if st := s.e.Stats(); st.Resent != 3 || st.ResendMisses != 2 {
		t.Fatalf("after the history wrapped: resent %d misses %d", st.Resent, st.ResendMisses)
	}
}

// TestResendAfterEpochBump: after we move to a larger epoch, a Nack of
// the new one never gets a message of the old one with the same number.
func TestResendAfterEpochBump(t *testing.T) {
	s := newStepper(t, nil)
	for range 3 {
		s.e.Send(recs(s.e.maxLive)) // sequences 1-3 of the old epoch
	}
	old := s.e.Stats().Epoch
	s.deliver(s.peer.heartbeat(0, old+100, 3)) // the peer saw a later run of ours
	bumped := s.e.Stats().Epoch
	s.e.Send(recs(s.e.maxLive)) // sequence 1 of the new epoch
	s.deliver(s.peer.seal(appendNack(appendHeader(nil, TypeNack, 0), bumped, []nackRange{{1, 3}}), 1))
	st := s.e.Stats()
	if bumped <= old || st.Resent != 1 || st.ResendMisses != 2 {
		t.Fatalf("epoch %d -> %d: resent %d misses %d, want 1 and 2", old, bumped, st.Resent, st.ResendMisses)
	}
	last := s.sent[len(s.sent)-1]
	if h := readHeader(last); h.epoch != bumped || h.seq != 1 {
		t.Fatalf("resent epoch %d seq %d, want %d and 1", h.epoch, h.seq, bumped)
	}
}

// lateImporter records which records came through ImportLate.
type lateImporter struct {
	*memImporter
	late []Record
}

func (l *lateImporter) ImportLate(r Record) error {
	l.late = append(l.late, r)
	return nil
}

// TestLateMessages: a message that arrives after later ones fills the
// window; its records go to ImportLate, and a late heartbeat or Nack is
// not acted on (its acknowledgement is old, its request answered).
func TestLateMessages(t *testing.T) {
	s := newStepper(t, nil)
	li := &lateImporter{memImporter: s.imp}
	s.e.cfg.Importer = li
	ours := s.e.Stats().Epoch
	s.e.Send(recs(s.e.maxLive))                // our sequence 1, for the late Nack to name
	s.deliver(s.peer.heartbeat(0, ours, 1))    // 1
	update := s.peer.update(recs(3))           // 2: overtaken
	hb := s.peer.heartbeat(0, ours, 0)         // 3: overtaken, an older ack
	nack := s.peer.nack(ours, nackRange{1, 1}) // 4: overtaken
	s.deliver(s.peer.update(recs(5)[3:]))      // 5
	for _, b := range [][]byte{update, hb, nack} {
		s.deliver(b)
	}
	st := s.e.Stats()
	if len(li.late) != 3 || li.late[0] != rec(0) || s.imp.len() != 2 {
		t.Fatalf("%d records late (first %v), %d on time", len(li.late), li.late, s.imp.len())
	}
	if st.Late != 3 || st.PeerAckSeq != 1 || st.NacksReceived != 0 || st.Resent != 0 {
		t.Fatalf("late %d, ack seq %d (want 1), nacks %d resent %d (want none)", st.Late, st.PeerAckSeq, st.NacksReceived, st.Resent)
	}
}

func TestSyncIgnoresOtherRequests(t *testing.T) {
	s := newStepper(t, nil)
	s.e.RequestBulk()
	id, _ := s.request()
	s.deliver(s.peer.heartbeat(0, 0, 0))
	first := s.transfer(id-1, recs(8), nil) // a transfer for an earlier request
	s.deliver(s.peer.bulkEnd(id-1, first, 8))
	s.deliver(s.peer.bulkEnd(id+1, first, 8))
	if _, n := s.request(); s.e.Synced() || n != 1 || s.e.Stats().BulkIncomplete != 0 {
		t.Fatalf("synced %v, %d requests", s.e.Synced(), n)
	}
	if s.imp.len() != 8 {
		t.Fatalf("records of another transfer are still flows: %d imported", s.imp.len())
	}
}

// TestLossAbandonsTransfer: a lost message of a long transfer abandons it
// when the hole leaves the replay window, without waiting for the end.
func TestLossAbandonsTransfer(t *testing.T) {
	s := newStepper(t, nil)
	s.e.RequestBulk()
	id, _ := s.request()
	s.deliver(s.peer.heartbeat(0, 0, 0)) // sequence 1
	const lostSeq = 10
	s.transfer(id, recs(8*(lostSeq+windowSize-2)), func(seq uint64) bool { return seq == lostSeq })
	if _, n := s.request(); n != 1 {
		t.Fatalf("asked again while the hole is still in the window (top %d)", s.e.open.win.top)
	}
	s.deliver(s.peer.heartbeat(0, 0, 0)) // sequence lostSeq+windowSize: the hole leaves
	if next, n := s.request(); n != 2 || next != id+1 || s.e.Stats().BulkIncomplete != 1 {
		t.Fatalf("%d requests (last %d): want a new one when %d left the window", n, next, lostSeq)
	}
}

func TestHeartbeatAckAndEpochBump(t *testing.T) {
	s := newStepper(t, nil)
	ours := s.e.Stats().Epoch
	s.e.sendHeartbeat()
	s.deliver(s.peer.heartbeat(flagSynced, ours, 1))
	st := s.e.Stats()
	if !st.PeerSynced || st.PeerAckEpoch != ours || st.PeerAckSeq != 1 || st.EpochBumps != 0 {
		t.Fatalf("ack: %+v", st)
	}
	// The peer acknowledges an epoch of ours later than the one we have.
	s.deliver(s.peer.heartbeat(0, ours+100, 7))
	st = s.e.Stats()
	if st.EpochBumps != 1 || st.Epoch <= ours+100 || st.PeerSynced {
		t.Fatalf("after a later ack: bumps %d epoch %d (ack %d) synced %v", st.EpochBumps, st.Epoch, ours+100, st.PeerSynced)
	}
	s.e.sendHeartbeat()
	hbs := s.sentOf(TypeHeartbeat)
	h := readHeader(hbs[len(hbs)-1])
	if h.epoch != st.Epoch || h.seq != 1 {
		t.Fatalf("next message: epoch %d seq %d, want %d and 1", h.epoch, h.seq, st.Epoch)
	}
	// The peer's opener accepts it as a restart of ours.
	o := newOpener(testKey, peer)
	mustAccept(t, o, hbs[0])
	mustAccept(t, o, hbs[len(hbs)-1])
}

// TestServe: the bulk side, with the bulk goroutine running and requests
// delivered as the peer would send them.
func TestServe(t *testing.T) {
	table := recs(20)
	gate := make(chan struct{})
	reached := make(chan struct{}, 10)
	s := newStepper(t, func(yield func(Record) bool) {
		for i, r := range table {
			if !yield(r) {
				return
			}
			if i == 0 {
				reached <- struct{}{}
				<-gate
			}
		}
	})
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { s.e.bulkLoop(ctx); close(done) }()
	t.Cleanup(func() { cancel(); close(gate); <-done })

	ends := func() [][]byte { return s.sentOf(TypeBulkEnd) }
	s.deliver(s.peer.bulkRequest(1))
	<-reached
	s.deliver(s.peer.bulkRequest(1)) // the requester repeats: ignored while serving
	s.deliver(s.peer.bulkRequest(2)) // supersedes 1
	gate <- struct{}{}               // 1 resumes, sees 2, gives up
	<-reached
	s.deliver(s.peer.bulkRequest(1)) // older than 2: ignored
	gate <- struct{}{}
	eventually(t, 5*time.Second, "BulkEnd", func() bool { return len(ends()) == 1 })
	end := ends()[0]
	body := end[HeaderSize:]
	if id, n := binary.BigEndian.Uint32(body[bRequest:]), binary.BigEndian.Uint64(body[bRecords:]); id != 2 || n != 20 {
		t.Fatalf("BulkEnd for %d with %d records, want 2 and 20", id, n)
	}
	first := binary.BigEndian.Uint64(body[bFirstSeq:])
	var bulk2 int
	for _, m := range s.sentOf(TypeUpdate) {
		if m[hFlags]&flagBulk == 0 {
			t.Fatal("a live Update")
		}
		id := binary.BigEndian.Uint32(m[HeaderSize+bRequest:])
		if id == 2 {
			bulk2 += int(readHeader(m).count)
			if f := binary.BigEndian.Uint64(m[HeaderSize+bFirstSeq:]); f != first || readHeader(m).seq < first {
				t.Fatalf("bulk Update first %d seq %d, BulkEnd first %d", f, readHeader(m).seq, first)
			}
		}
	}
	if bulk2 != 20 {
		t.Fatalf("request 2 got %d records in bulk Updates", bulk2)
	}
	// A repeat of 2 after its end gets the same BulkEnd again, not a new walk.
	updates := len(s.sentOf(TypeUpdate))
	s.deliver(s.peer.bulkRequest(2))
	eventually(t, 5*time.Second, "BulkEnd repeated", func() bool { return len(ends()) == 2 })
	again := ends()[1]
	if !bytes.Equal(again[HeaderSize:HeaderSize+bulkEndSize], body[:bulkEndSize]) || len(s.sentOf(TypeUpdate)) != updates {
		t.Fatal("the repeat was not answered with the same BulkEnd alone")
	}
	if st := s.e.Stats(); st.BulkRequestsServed != 1 || st.LastServedRecords != 20 {
		t.Fatalf("served %d, last %d records", st.BulkRequestsServed, st.LastServedRecords)
	}
}

// TestRejectsCounted: each rejected datagram is counted under its reason
// in Stats, and nothing else moves.
func TestRejectsCounted(t *testing.T) {
	s := newStepper(t, nil)
	s.deliver(s.peer.heartbeat(0, 0, 0))
	accepted := s.peer.update(recs(1))
	s.deliver(accepted)
	before := s.e.Stats()
	s.deliver(s.peer.raw(numTypes, 0, []byte("v2 body"), nil))
	s.deliver(s.peer.raw(numTypes+1, 0, nil, nil))
	s.deliver(newSealer([]byte("not the key, but long enough"), peer, 5000).heartbeat(0, 0, 0))
	s.deliver(newSealer(testKey, self, 5000).heartbeat(0, 0, 0))
	s.deliver(accepted)
	s.deliver([]byte("short"))
	after := s.e.Stats()
	want := before.Rejected
	want[RejectType] += 2
	want[RejectMAC]++
	want[RejectLoop]++
	want[RejectReplay]++
	want[RejectShort]++
	if after.Rejected != want {
		t.Fatalf("rejected %v, want %v", after.Rejected, want)
	}
	if after.MessagesReceived != before.MessagesReceived || after.Imported != before.Imported || after.PeerSeq != before.PeerSeq {
		t.Fatalf("a rejected message moved the counters: %+v -> %+v", before, after)
	}
}
