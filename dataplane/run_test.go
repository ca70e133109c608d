package dataplane

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/internal/header"
	pt "github.com/culvert-lb/culvert/internal/packettest"
	"github.com/culvert-lb/culvert/nic"
)

// sleepyQueue is a Mem queue that records Wait calls and is safe to feed
// from another goroutine.
type sleepyQueue struct {
	mu sync.Mutex
	*nic.Mem
	waits int
}

func (q *sleepyQueue) Receive(d []nic.Desc) int {
	q.mu.Lock()
	defer q.mu.Unlock()
	return q.Mem.Receive(d)
}

func (q *sleepyQueue) Wait(timeout time.Duration) error {
	q.mu.Lock()
	q.waits++
	q.mu.Unlock()
	time.Sleep(time.Millisecond)
	return nil
}

func TestRunSleepsWhenIdleAndStops(t *testing.T) {
	dp, err := New(Options{Workers: 1, MaxFlows: 1024})
	if err != nil {
		t.Fatal(err)
	}
	if err := dp.Apply(labConfig(ModeDSR, header.ProtoUDP)); err != nil {
		t.Fatal(err)
	}
	m, _ := nic.NewMem(64, 2048, 256)
	q := &sleepyQueue{Mem: m}
	w, err := dp.NewWorker(0, q)
	if err != nil {
		t.Fatal(err)
	}
	q.mu.Lock()
	q.Inject(pt.UDP4(clientEP(1), vipEP(), []byte("x")))
	q.mu.Unlock()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx, RunOptions{CPU: -1, SpinPolls: 4}) }()
	time.Sleep(50 * time.Millisecond)
	cancel()
	select {
	case err := <-done:
		if err != context.Canceled {
			t.Fatalf("Run returned %v", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not stop")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.waits == 0 {
		t.Fatal("idle worker never slept")
	}
	if s := w.Stats(); s.TX != 1 {
		t.Fatalf("tx %d, want 1", s.TX)
	}
}
