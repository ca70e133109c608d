package dataplane

import (
	"context"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/culvert-lb/culvert/nic"
)

// Waiter is a queue that can sleep until frames arrive (the AF_XDP queue
// polls its socket). Queues that are not Waiters are spun on.
type Waiter interface {
	Wait(timeout time.Duration) error
}

// RunOptions shape a worker's loop.
type RunOptions struct {
	// CPU pins the worker's OS thread; -1 leaves it unpinned.
	CPU int
	// SpinPolls is how many empty polls in a row the worker makes before
	// it sleeps in Wait: it busy-polls only while traffic flows. 0 means 64.
	SpinPolls int
	// Sleep bounds one Wait; 0 means 100 ms. The worker checks for
	// shutdown at least this often when idle.
	Sleep time.Duration
}

// Run polls the worker's queue until ctx ends. It locks the goroutine to
// its OS thread, pins that thread when asked, and sleeps in the queue's
// Wait when the queue has been empty for SpinPolls polls, so that an idle
// appliance uses no CPU. It returns ctx's error, or a pinning error.
func (w *Worker) Run(ctx context.Context, o RunOptions) error {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	if o.CPU >= 0 {
		if err := nic.PinThread(o.CPU); err != nil {
			return err
		}
	}
	if o.SpinPolls == 0 {
		o.SpinPolls = 64
	}
	if o.Sleep == 0 {
		o.Sleep = 100 * time.Millisecond
	}
	// ctx.Err takes a lock; the loop reads an atomic flag instead.
	var stop atomic.Bool
	defer context.AfterFunc(ctx, func() { stop.Store(true) })()
	waiter, _ := w.q.(Waiter)
	idle := 0
	for !stop.Load() {
		if w.Poll() > 0 {
			idle = 0
			continue
		}
		idle++
		if idle < o.SpinPolls {
			continue
		}
		if waiter == nil {
			runtime.Gosched()
			continue
		}
		if err := waiter.Wait(o.Sleep); err != nil {
			w.c.v[cWaitErrors].Store(w.c.v[cWaitErrors].Load() + 1)
			time.Sleep(o.Sleep / 10) // a broken socket must not spin
		}
	}
	return ctx.Err()
}

// RunSweeper expires flows until ctx ends, scanning about a tenth of the
// table every interval (0 means 100 ms), so the whole table is visited
// about once a second.
func (d *Dataplane) RunSweeper(ctx context.Context, interval time.Duration) {
	if interval == 0 {
		interval = 100 * time.Millisecond
	}
	budget := max(4096, d.ct.Capacity()/10)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.Sweep(budget)
		}
	}
}
