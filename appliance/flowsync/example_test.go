package flowsync_test

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/culvert-lb/culvert/appliance/flowsync"
)

// table is a stand-in for the connection table: an Importer and a Walk.
type table struct {
	mu    sync.Mutex
	flows map[flowsync.Tuple]flowsync.Record
}

func (t *table) Import(r flowsync.Record) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r.Kind == flowsync.KindRemove {
		delete(t.flows, r.Orig)
	} else {
		t.flows[r.Orig] = r
	}
	return nil
}

func (t *table) Walk(yield func(flowsync.Record) bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range t.flows {
		if !yield(r) {
			return
		}
	}
}

func (t *table) Len() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.flows)
}

// Two appliances on one host: the backup starts after the master has
// flows, and gets them by bulk resync before it would preempt.
func Example() {
	key := []byte("a pre-shared key of 32 bytes!!!!")
	loopback := netip.MustParseAddrPort("127.0.0.1:0")

	master := &table{flows: map[flowsync.Tuple]flowsync.Record{}}
	for i := range 3 {
		r := flowsync.Record{
			Orig:      flowsync.Tuple{Src: netip.AddrFrom4([4]byte{10, 0, 0, byte(i)}), Dst: netip.MustParseAddr("192.0.2.1"), SrcPort: 40000, DstPort: 80, Proto: 6},
			State:     3,
			Remaining: time.Hour,
			Service:   flowsync.Service{VIP: netip.MustParseAddr("192.0.2.1"), Proto: 6, Port: 80},
			Backend:   netip.MustParseAddrPort("198.51.100.1:80"),
		}
		master.flows[r.Orig] = r
	}
	backup := &table{flows: map[flowsync.Tuple]flowsync.Record{}}

	a, err := flowsync.New(flowsync.Config{Node: 1, Key: key, Local: loopback, Peer: netip.MustParseAddrPort("127.0.0.1:9"),
		Importer: master, Walk: master.Walk})
	if err != nil {
		panic(err)
	}
	b, err := flowsync.New(flowsync.Config{Node: 2, Key: key, Local: loopback, Peer: a.LocalAddr(),
		Importer: backup, Walk: backup.Walk})
	if err != nil {
		panic(err)
	}
	a.SetPeer(b.LocalAddr())

	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() { a.Run(ctx) })
	wg.Go(func() { b.Run(ctx) })

	// The daemon's loop: take the channel, then read Synced, then wait.
	deadline := time.After(10 * time.Second)
	for {
		changed := b.SyncChanged()
		if b.Synced() {
			break
		}
		select {
		case <-changed:
			continue
		case <-deadline:
			fmt.Println("timed out")
		}
		break
	}
	fmt.Println("backup synced with", backup.Len(), "flows")
	cancel()
	wg.Wait()
	// Output: backup synced with 3 flows
}
