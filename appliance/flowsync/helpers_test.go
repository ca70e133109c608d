package flowsync

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"
)

var testKey = []byte("0123456789abcdef0123456789abcdef")

// rec returns a distinct full-NAT IPv4 record for i.
func rec(i int) Record {
	client := netip.AddrFrom4([4]byte{10, byte(i >> 16), byte(i >> 8), byte(i)})
	vip := netip.MustParseAddr("192.0.2.10")
	be := netip.MustParseAddr("198.51.100.7")
	local := netip.MustParseAddr("198.51.100.250")
	return Record{
		Kind:      KindUpdate,
		Orig:      Tuple{Src: client, Dst: vip, SrcPort: uint16(1024 + i%60000), DstPort: 443, Proto: 6},
		Reply:     Tuple{Src: be, Dst: local, SrcPort: 8443, DstPort: uint16(20000 + i%40000), Proto: 6},
		HasReply:  true,
		State:     3,
		Remaining: time.Duration(300+i%1000) * time.Second,
		Service:   Service{VIP: vip, Proto: 6, Port: 443},
		Backend:   netip.AddrPortFrom(be, 8443),
		Local:     local,
		Owner:     uint16(i % 4),
	}
}

func recs(n int) []Record {
	r := make([]Record, n)
	for i := range r {
		r[i] = rec(i)
	}
	return r
}

// memImporter is a table in a map, keyed by the original tuple.
type memImporter struct {
	mu    sync.Mutex
	flows map[Tuple]Record
	calls int
	fail  bool // refuse every record
}

func newMemImporter() *memImporter { return &memImporter{flows: map[Tuple]Record{}} }

func (m *memImporter) Import(r Record) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.fail {
		return errRefused
	}
	if r.Kind == KindRemove {
		delete(m.flows, r.Orig)
	} else {
		m.flows[r.Orig] = r
	}
	return nil
}

func (m *memImporter) len() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.flows)
}

func (m *memImporter) get(t Tuple) (Record, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	r, ok := m.flows[t]
	return r, ok
}

type refusedError struct{}

func (refusedError) Error() string { return "refused" }

var errRefused error = refusedError{}

// walkOf serves a copy of table (guarded by mu) as a Walker.
func walkOf(mu *sync.Mutex, table *[]Record) func(yield func(Record) bool) {
	return func(yield func(Record) bool) {
		mu.Lock()
		t := append([]Record(nil), (*table)...)
		mu.Unlock()
		for _, r := range t {
			if !yield(r) {
				return
			}
		}
	}
}

// placeholder is a peer address nothing listens on, for an Endpoint whose
// peer is not created yet.
var placeholder = netip.MustParseAddrPort("127.0.0.1:9")

// fastConfig returns a loopback Config with short timers.
func fastConfig(node uint32) Config {
	return Config{
		Node:              node,
		Key:               testKey,
		Local:             netip.MustParseAddrPort("127.0.0.1:0"),
		Peer:              placeholder,
		HeartbeatInterval: 20 * time.Millisecond,
		BulkRetry:         100 * time.Millisecond,
		FlushInterval:     5 * time.Millisecond,
	}
}

// start runs e until the test ends.
func start(t *testing.T, e *Endpoint) (stop func()) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(5 * time.Second):
				t.Errorf("Run did not return after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func newEndpoint(t *testing.T, c Config) *Endpoint {
	t.Helper()
	e, err := New(c)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { e.Close() })
	return e
}

// eventually polls cond until it holds or the timeout passes.
func eventually(t *testing.T, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// setDrop installs the test hook that drops outgoing datagrams.
func (e *Endpoint) setDrop(f func(b []byte) bool) {
	e.sendMu.Lock()
	e.drop = f
	e.sendMu.Unlock()
}

// enc appends r's encoding to b.
func enc(r Record, b []byte) []byte { return r.Append(b) }
