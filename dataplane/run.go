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
	// SpinPolls is how many empty polls in a row (every queue empty) the
	// worker makes before it sleeps: it busy-polls only while traffic
	// flows. 0 means 64.
	SpinPolls int
	// Sleep bounds one sleep; 0 means 100 ms. The worker checks for
	// shutdown at least this often when idle.
	Sleep time.Duration
}

// Run polls the worker's queues until ctx ends. It locks the goroutine to
// its OS thread, pins that thread when asked, and sleeps when every queue
// has been empty for SpinPolls polls in a row, so that an idle appliance
// uses no CPU. It returns ctx's error, or a pinning error.
//
// How it sleeps depends on the queues:
//
//   - one queue that is a Waiter: in its Wait, for up to Sleep;
//   - several AF_XDP queues (*nic.XDP, two-armed): in nic.WaitAny over all
//     of them, one poll(2) on every socket, for up to Sleep, so a frame on
//     any link wakes the worker at once;
//   - several queues that are all Waiters, not all AF_XDP: in each queue's
//     Wait in turn, for at most a millisecond, polling everything between
//     two sleeps: a frame on a queue the worker is not sleeping on waits
//     up to 1 ms, at the cost of ~1000 wakeups a second when idle;
//   - any queue that cannot wait: no sleep, the worker yields and spins.
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
	sleep := w.sleeper(o.Sleep)
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
		if sleep == nil {
			runtime.Gosched()
			continue
		}
		if err := sleep(); err != nil {
			w.c.v[cWaitErrors].Store(w.c.v[cWaitErrors].Load() + 1)
			time.Sleep(o.Sleep / 10) // a broken socket must not spin
		}
	}
	return ctx.Err()
}

// multiWaitSlice bounds one Wait when a worker sleeps on several queues
// that cannot be waited on together.
const multiWaitSlice = time.Millisecond

// sleeper returns the worker's idle sleep, as Run describes, or nil when
// it must spin.
func (w *Worker) sleeper(d time.Duration) func() error {
	waiters := make([]Waiter, 0, len(w.links))
	xs := make([]*nic.XDP, 0, len(w.links))
	for _, l := range w.links {
		wt, ok := l.q.(Waiter)
		if !ok {
			return nil
		}
		waiters = append(waiters, wt)
		if x, ok := l.q.(*nic.XDP); ok {
			xs = append(xs, x)
		}
	}
	switch {
	case len(waiters) == 1:
		return func() error { return waiters[0].Wait(d) }
	case len(xs) == len(waiters) && len(xs) <= nic.MaxWaitAny:
		return func() error { return nic.WaitAny(d, xs...) }
	}
	slice := min(d, multiWaitSlice)
	next := 0
	return func() error {
		wt := waiters[next]
		next = (next + 1) % len(waiters)
		return wt.Wait(slice)
	}
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
