package flowsync

import (
	"bytes"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

func TestConfigValidate(t *testing.T) {
	good := fastConfig(1)
	if err := good.Validate(); err != nil {
		t.Fatalf("good config: %v", err)
	}
	tests := []struct {
		name string
		edit func(c *Config)
		want []string
	}{
		{"zero", func(c *Config) { *c = Config{} }, []string{"node", "key", "local", "peer"}},
		{"short key", func(c *Config) { c.Key = []byte("fifteen bytes!!") }, []string{"key: 15 bytes"}},
		{"peer is local", func(c *Config) { c.Local = netip.MustParseAddrPort("127.0.0.1:7000"); c.Peer = c.Local }, []string{"local address"}},
		{"peer port 0", func(c *Config) { c.Peer = netip.MustParseAddrPort("127.0.0.1:0") }, []string{"peer"}},
		{"message size", func(c *Config) { c.MaxMessageSize = MinMessageSize - 1 }, []string{"max message size"}},
		{"message size big", func(c *Config) { c.MaxMessageSize = MaxMessageSize + 1 }, []string{"max message size"}},
		{"negative", func(c *Config) {
			c.FlushInterval, c.HeartbeatInterval, c.BulkRetry, c.SendTimeout = -1, -1, -1, -1
			c.BulkRate, c.ReadBuffer = -1, -1
		}, []string{"flush interval", "heartbeat interval", "bulk retry", "send timeout", "bulk rate", "read buffer"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := fastConfig(1)
			tt.edit(&c)
			err := c.Validate()
			if err == nil {
				t.Fatal("Validate accepted it")
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
			if _, err := New(c); err == nil {
				t.Error("New accepted it")
			}
		})
	}
}

// pair creates two endpoints that are each other's peer, not running.
func pair(t *testing.T, ca, cb Config) (a, b *Endpoint) {
	t.Helper()
	a = newEndpoint(t, ca)
	cb.Peer = a.LocalAddr()
	b = newEndpoint(t, cb)
	a.SetPeer(b.LocalAddr())
	return a, b
}

func TestUpdatesStream(t *testing.T) {
	impB := newMemImporter()
	ca, cb := fastConfig(1), fastConfig(2)
	cb.Importer = impB
	a, b := pair(t, ca, cb)
	start(t, a)
	start(t, b)
	eventually(t, 5*time.Second, "both synced", func() bool { return a.Synced() && b.Synced() })

	rs := recs(100)
	a.Send(rs[:50])
	a.Send(rs[50:]) // the partial last message goes out on the timer
	eventually(t, 5*time.Second, "100 flows at B", func() bool { return impB.len() == 100 })
	for i := range rs {
		got, ok := impB.get(rs[i].Orig)
		if !ok || got != rs[i] {
			t.Fatalf("flow %d at B: %+v %v, want %+v", i, got, ok, rs[i])
		}
	}
	rm := rs[10]
	rm.Kind = KindRemove
	a.Send([]Record{rm})
	a.Flush()
	eventually(t, 5*time.Second, "remove at B", func() bool { return impB.len() == 99 })

	sa, sb := a.Stats(), b.Stats()
	if sa.RecordsSent < 101 || sb.RecordsReceived < 101 || sb.Imported < 101 {
		t.Errorf("counters: A sent %d, B received %d imported %d", sa.RecordsSent, sb.RecordsReceived, sb.Imported)
	}
	for r, n := range sb.Rejected {
		if n != 0 {
			t.Errorf("B rejected %d as %v", n, RejectReason(r))
		}
	}
	if sb.PeerNode != 1 || sb.PeerEpoch != sa.Epoch || sb.PeerSeq == 0 || sb.LastReceived.IsZero() || sb.Lag > time.Second {
		t.Errorf("B's view of A: node %d epoch %d/%d seq %d last %v lag %v", sb.PeerNode, sb.PeerEpoch, sa.Epoch, sb.PeerSeq, sb.LastReceived, sb.Lag)
	}
	eventually(t, 2*time.Second, "heartbeat acks", func() bool {
		sa := a.Stats()
		return sa.PeerAckEpoch == sa.Epoch && sa.PeerAckSeq > 0 && sa.PeerSynced
	})
	if sb.Gaps != 0 {
		t.Errorf("B saw %d gaps on loopback", sb.Gaps)
	}
}

func TestImportErrorsCounted(t *testing.T) {
	imp := newMemImporter()
	imp.fail = true
	ca, cb := fastConfig(1), fastConfig(2)
	cb.Importer = imp
	a, b := pair(t, ca, cb)
	start(t, b)
	a.Send(recs(5))
	a.Flush()
	eventually(t, 5*time.Second, "import errors", func() bool { return b.Stats().ImportErrors == 5 })
	if s := b.Stats(); s.Imported != 0 || s.RecordsReceived != 5 {
		t.Fatalf("imported %d received %d", s.Imported, s.RecordsReceived)
	}
}

// TestBulkResync: B starts after A has 10,000 flows and gets them all by
// bulk resync; then B's Synced is true and the count matches.
func TestBulkResync(t *testing.T) {
	const n = 10000
	var mu sync.Mutex
	table := recs(n)
	impB := newMemImporter()
	ca := fastConfig(1)
	ca.Walk = walkOf(&mu, &table)
	a := newEndpoint(t, ca)
	start(t, a)
	time.Sleep(50 * time.Millisecond) // A runs alone: its requests go nowhere

	cb := fastConfig(2)
	cb.Importer = impB
	cb.Peer = a.LocalAddr()
	b := newEndpoint(t, cb)
	changed := b.SyncChanged()
	if b.Synced() {
		t.Fatal("synced before running")
	}
	a.SetPeer(b.LocalAddr())
	start(t, b)
	select {
	case <-changed:
	case <-time.After(10 * time.Second):
		t.Fatal("SyncChanged not closed")
	}
	eventually(t, 10*time.Second, "B synced", b.Synced)
	if got := impB.len(); got != n {
		t.Fatalf("B has %d flows, want %d", got, n)
	}
	sb, sa := b.Stats(), a.Stats()
	if sb.LastBulkRecords != n || sb.LastBulkDuration <= 0 {
		t.Errorf("B: last bulk %d records in %v", sb.LastBulkRecords, sb.LastBulkDuration)
	}
	if sa.BulkRequestsServed == 0 || sa.LastServedRecords != n {
		t.Errorf("A: served %d, last %d records", sa.BulkRequestsServed, sa.LastServedRecords)
	}
	// At 200k records/s, 10k records take at least 50ms.
	if sa.LastServedDuration < 40*time.Millisecond {
		t.Errorf("A served %d records in %v: faster than BulkRate", n, sa.LastServedDuration)
	}
	eventually(t, 5*time.Second, "A synced from B's empty table", a.Synced)
}

// TestBulkRate: a low rate stretches the transfer accordingly.
func TestBulkRate(t *testing.T) {
	var mu sync.Mutex
	table := recs(400)
	ca, cb := fastConfig(1), fastConfig(2)
	ca.Walk = walkOf(&mu, &table)
	ca.BulkRate = 2000 // 400 records: 200ms
	cb.BulkRetry = 2 * time.Second
	a, b := pair(t, ca, cb)
	start(t, a)
	start(t, b)
	eventually(t, 10*time.Second, "B synced", b.Synced)
	if d := a.Stats().LastServedDuration; d < 150*time.Millisecond || d > 5*time.Second {
		t.Fatalf("400 records at 2000/s took %v, want about 200ms", d)
	}
}

// TestForgedRejected: a third party with the wrong key, garbage, and
// replays of the real peer's messages change nothing at B.
func TestForgedRejected(t *testing.T) {
	impB := newMemImporter()
	ca, cb := fastConfig(1), fastConfig(2)
	cb.Importer = impB
	var captured [][]byte
	var capMu sync.Mutex
	a, b := pair(t, ca, cb)
	a.setDrop(func(m []byte) bool {
		capMu.Lock()
		captured = append(captured, bytes.Clone(m))
		capMu.Unlock()
		return false
	})
	start(t, a)
	start(t, b)
	a.Send(recs(3))
	a.Flush()
	eventually(t, 5*time.Second, "3 flows at B", func() bool { return impB.len() == 3 })
	eventually(t, 5*time.Second, "B synced", b.Synced)

	// Mallory knows the protocol but not the key, and claims to be A.
	cm := fastConfig(1)
	cm.Key = []byte("mallory's own 32 byte secret key")
	cm.Peer = b.LocalAddr()
	m := newEndpoint(t, cm)
	before := b.Stats()
	forged := recs(20)[10:]
	m.Send(forged)
	m.Flush()
	m.RequestBulk()
	raw, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(b.LocalAddr()))
	if err != nil {
		t.Fatal(err)
	}
	defer raw.Close()
	raw.Write([]byte("garbage"))
	raw.Write(make([]byte, 200))
	capMu.Lock()
	replays := captured
	capMu.Unlock()
	for _, p := range replays {
		raw.Write(p)
	}
	wantMAC, wantReplay := before.Rejected[RejectMAC]+2, before.Rejected[RejectReplay]+uint64(len(replays))
	eventually(t, 5*time.Second, "rejections", func() bool {
		s := b.Stats()
		return s.Rejected[RejectMAC] >= wantMAC && s.Rejected[RejectReplay] >= wantReplay &&
			s.Rejected[RejectShort]+s.Rejected[RejectMagic] >= before.Rejected[RejectShort]+before.Rejected[RejectMagic]+2
	})
	after := b.Stats()
	if impB.len() != 3 {
		t.Fatalf("B has %d flows after the forgeries, want 3", impB.len())
	}
	for _, r := range forged {
		if _, ok := impB.get(r.Orig); ok {
			t.Fatalf("forged flow %v imported", r.Orig)
		}
	}
	if !after.Synced || after.PeerEpoch != before.PeerEpoch || after.Imported != before.Imported {
		t.Fatalf("forgeries changed B: synced %v epoch %d->%d imported %d->%d",
			after.Synced, before.PeerEpoch, after.PeerEpoch, before.Imported, after.Imported)
	}
	if a.Stats().BulkRequestsServed != 1 {
		t.Fatalf("A served %d bulks; Mallory's request must not reach it", a.Stats().BulkRequestsServed)
	}
}

// TestLossConverges: A drops its 5th datagram and every 20th after, B
// every 7th (Nacks included); Nacks, resent messages and the retried
// BulkRequest still bring B to a complete copy.
func TestLossConverges(t *testing.T) {
	const n = 100 // 13 bulk messages and a BulkEnd: some transfers dodge the drops, some do not
	var mu sync.Mutex
	table := recs(n)
	impB := newMemImporter()
	ca, cb := fastConfig(1), fastConfig(2)
	ca.Walk = walkOf(&mu, &table)
	cb.Importer = impB
	a, b := pair(t, ca, cb)
	dropEvery := func(first, k int64) func([]byte) bool {
		var c atomic.Int64
		return func([]byte) bool {
			i := c.Add(1)
			return i == first || i%k == 0
		}
	}
	a.setDrop(dropEvery(5, 20))
	b.setDrop(dropEvery(7, 7))
	start(t, a)
	start(t, b)
	eventually(t, 20*time.Second, "B synced despite loss", b.Synced)
	if got := impB.len(); got != n {
		t.Fatalf("B has %d flows, want %d", got, n)
	}
	s, sa := b.Stats(), a.Stats()
	if s.Gaps == 0 || s.NacksSent == 0 {
		t.Fatalf("no transfer was hit by the loss (gaps %d, nacks %d): the test tests nothing", s.Gaps, s.NacksSent)
	}
	t.Logf("B: %d requests sent, %d incomplete transfers, %d gaps, %d late, %d nacks; A resent %d",
		s.BulkRequestsSent, s.BulkIncomplete, s.Gaps, s.Late, s.NacksSent, sa.Resent)
}

// TestLossRepaired: a bulk message lost in a long transfer is named in a
// Nack and sent again, and the transfer completes without a new request
// (TestLossAbandonsTransfer shows, step by step, that a hole nobody fills
// abandons it before the BulkEnd).
func TestLossRepaired(t *testing.T) {
	const n = 5000 // 625 messages: more than twice the window
	var mu sync.Mutex
	table := recs(n)
	impB := newMemImporter()
	ca, cb := fastConfig(1), fastConfig(2)
	ca.Walk = walkOf(&mu, &table)
	cb.Importer = impB
	cb.BulkRetry = time.Second // no repeat of the request during the transfer
	a, b := pair(t, ca, cb)
	var dropped atomic.Bool
	a.setDrop(func(m []byte) bool {
		// Drop the bulk Update that starts with the third message's first record, once.
		if m[hType] == uint8(TypeUpdate) && m[hFlags]&flagBulk != 0 && !dropped.Load() {
			var r Record
			if r.Decode(m[HeaderSize+bulkPrefixSize:]) == nil && r == table[2*a.maxBulk] {
				dropped.Store(true)
				return true
			}
		}
		return false
	})
	start(t, a)
	start(t, b)
	eventually(t, 10*time.Second, "B synced", b.Synced)
	s, sa := b.Stats(), a.Stats()
	if !dropped.Load() || s.BulkIncomplete != 0 || s.Gaps != 1 || s.Late != 1 || sa.Resent == 0 { // resent again if B was slow
		t.Fatalf("dropped %v, incomplete %d, gaps %d, late %d, resent %d (nacks %d, misses %d)", dropped.Load(), s.BulkIncomplete, s.Gaps, s.Late, sa.Resent, sa.NacksReceived, sa.ResendMisses)
	}
	if sa.BulkRequestsServed == 0 || impB.len() != n {
		t.Fatalf("A completed %d transfers, B has %d flows", sa.BulkRequestsServed, impB.len())
	}
}

// TestPeerRestart: when A restarts (a larger epoch on the same port), B
// resyncs from the new run; a restart with a clock that went back is
// healed by B's heartbeat acknowledgements.
func TestPeerRestart(t *testing.T) {
	for _, tc := range []struct {
		name  string
		epoch func(old uint64) uint64
		bumps uint64
	}{
		{"later epoch", func(old uint64) uint64 { return old + 1000 }, 0},
		{"clock went back", func(old uint64) uint64 { return old - 1000 }, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var mu sync.Mutex
			table := recs(50)
			impB := newMemImporter()
			ca, cb := fastConfig(1), fastConfig(2)
			ca.Walk = walkOf(&mu, &table)
			cb.Importer = impB
			a, b := pair(t, ca, cb)
			stopA := start(t, a)
			start(t, b)
			eventually(t, 5*time.Second, "B synced", b.Synced)
			before := b.Stats()
			changed := b.SyncChanged()

			stopA()
			mu.Lock()
			table = append(table, recs(60)[50:]...) // the new run has 10 more flows
			mu.Unlock()
			ca.Local = a.LocalAddr()
			ca.Peer = b.LocalAddr()
			ca.Epoch = tc.epoch(a.Stats().Epoch)
			a2 := newEndpoint(t, ca)
			start(t, a2)
			select {
			case <-changed: // Synced went false for the new resync
			case <-time.After(5 * time.Second):
				t.Fatal("B did not notice the restart")
			}
			eventually(t, 10*time.Second, "B synced with the new run", func() bool {
				return b.Synced() && b.Stats().PeerEpoch == a2.Stats().Epoch
			})
			if impB.len() != 60 {
				t.Fatalf("B has %d flows, want 60", impB.len())
			}
			s := b.Stats()
			if s.BulkRequestsSent <= before.BulkRequestsSent {
				t.Fatal("B did not ask for a bulk after the restart")
			}
			if got := a2.Stats().EpochBumps; got != tc.bumps {
				t.Fatalf("EpochBumps = %d, want %d", got, tc.bumps)
			}
			if tc.bumps > 0 && s.Rejected[RejectStaleEpoch] == 0 {
				t.Fatal("B never rejected the run with the older epoch")
			}
		})
	}
}

func TestRunTwice(t *testing.T) {
	a := newEndpoint(t, fastConfig(1))
	stop := start(t, a)
	time.Sleep(10 * time.Millisecond)
	if err := a.Run(t.Context()); err == nil {
		t.Fatal("second Run returned nil")
	}
	stop()
}

func TestSendErrorsCounted(t *testing.T) {
	c := fastConfig(1)
	a := newEndpoint(t, c)
	a.Close()
	a.Send(recs(a.maxLive)) // a full message: written at once
	if s := a.Stats(); s.SendErrors != 1 || s.MessagesSent != 0 {
		t.Fatalf("send errors %d, sent %d", s.SendErrors, s.MessagesSent)
	}
}

// TestFlushOnStop: records held for a full message go out when Run's
// context ends.
func TestFlushOnStop(t *testing.T) {
	imp := newMemImporter()
	ca, cb := fastConfig(1), fastConfig(2)
	ca.FlushInterval = time.Hour
	ca.HeartbeatInterval = time.Hour
	ca.BulkRetry = time.Hour
	cb.Importer = imp
	a, b := pair(t, ca, cb)
	start(t, b)
	stopA := start(t, a)
	a.Send(recs(3))
	time.Sleep(20 * time.Millisecond)
	if imp.len() != 0 {
		t.Fatalf("%d flows before the flush", imp.len())
	}
	stopA()
	eventually(t, 5*time.Second, "3 flows at B", func() bool { return imp.len() == 3 })
}

// TestSendLongBatch: one Send of many records becomes full messages.
func TestSendLongBatch(t *testing.T) {
	c := fastConfig(1)
	a := newEndpoint(t, c)
	a.setDrop(func([]byte) bool { return true })
	a.Send(recs(10*a.maxLive + 3))
	if s := a.Stats(); s.MessagesSent != 10 || s.RecordsSent != uint64(10*a.maxLive) {
		t.Fatalf("sent %d messages, %d records", s.MessagesSent, s.RecordsSent)
	}
	a.Flush()
	if s := a.Stats(); s.MessagesSent != 11 || s.RecordsSent != uint64(10*a.maxLive+3) || s.Seq != 11 {
		t.Fatalf("after Flush: %d messages, %d records, seq %d", s.MessagesSent, s.RecordsSent, s.Seq)
	}
}
