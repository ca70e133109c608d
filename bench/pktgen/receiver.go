package pktgen

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/culvert-lb/culvert/nic"
)

// ReceiverConfig configures a Receiver. Zero fields take the defaults
// noted on each. It is a plain value.
type ReceiverConfig struct {
	Iface  string         // interface to receive on; required
	Queues int            // read receive queues 0..Queues-1 of Iface, 1 to nic.MaxWaitAny (default 1)
	Match  Match          // the frames to redirect to the sockets
	Mode   nic.AttachMode // of the steering program; AttachAuto (the zero value): native, else generic

	// XDP is the socket configuration; Iface and QueueID are set per
	// queue, zero fields take nic's defaults.
	XDP nic.XDPConfig

	// BusyPoll keeps Run polling when no frame comes, instead of
	// sleeping in poll(2) after 64 empty polls: a CPU spent for latency
	// figures free of the wake-up delay (on a loaded machine, up to
	// milliseconds).
	BusyPoll bool

	// Pin runs the receive loop on an OS thread pinned to CPU
	// (nic.PinThread); the thread exits when Run returns.
	Pin bool
	CPU int
}

// receiverIdlePolls and receiverWait shape Run's idling as
// dataplane.Worker.Run's: after this many empty polls it sleeps in poll(2)
// for up to receiverWait, and sees a cancelled context within that.
const (
	receiverIdlePolls = 64
	receiverWait      = 20 * time.Millisecond
	receiverDrain     = 64 // batches per queue read after cancellation
)

// Receiver reads the probes of generated frames from AF_XDP sockets on one
// interface: an XDP program redirects the frames its Match selects to the
// socket of their receive queue, and passes everything else to the kernel.
// Per stream it counts frames, duplicates, reordering and the range of
// sequence numbers (see StreamStats), and records one-way latency, the
// receive time (Nanotime, once per batch of up to 64) minus the probe's
// transmit time, in a Histogram.
//
// Run owns the sockets and the counts while it runs: Stats and Reset must
// not be called then, nor Close. Frames, Counts and QueueStats may be
// called at any time. There is no useful zero value: use NewReceiver.
type Receiver struct {
	p      *xdpProg
	xs     []*nic.XDP
	cfg    ReceiverConfig
	core   rxCore
	d      [BatchSize]nic.Desc
	frames atomic.Uint64 // core.frames, for readers while Run runs
}

// NewReceiver opens the sockets and attaches the program to cfg.Iface, in
// the calling thread's network namespace.
func NewReceiver(cfg ReceiverConfig) (*Receiver, error) {
	if cfg.Queues == 0 {
		cfg.Queues = 1
	}
	if cfg.Queues < 0 || cfg.Queues > nic.MaxWaitAny {
		return nil, fmt.Errorf("receiver: %d queues, not 1..%d", cfg.Queues, nic.MaxWaitAny)
	}
	if cfg.Pin && (cfg.CPU < 0 || cfg.CPU >= runtime.NumCPU()) {
		return nil, fmt.Errorf("receiver: cpu %d not in 0..%d", cfg.CPU, runtime.NumCPU()-1)
	}
	p, err := loadProg("pktgen_rx", cfg.Match, cfg.Queues)
	if err != nil {
		return nil, fmt.Errorf("receiver on %s: %w", cfg.Iface, err)
	}
	r := &Receiver{p: p, cfg: cfg}
	for q := range cfg.Queues {
		xc := cfg.XDP
		xc.Iface, xc.QueueID = cfg.Iface, q
		x, err := openQueue(xc) // retried for a second while a closed socket still holds the queue
		if err != nil {
			r.Close()
			return nil, fmt.Errorf("receiver on %s queue %d: %w", cfg.Iface, q, err)
		}
		r.xs = append(r.xs, x)
		if err := p.setSocket(q, x.FD()); err != nil {
			r.Close()
			return nil, fmt.Errorf("receiver on %s: %w", cfg.Iface, err)
		}
	}
	if err := p.attach(cfg.Iface, cfg.Mode); err != nil {
		r.Close()
		return nil, fmt.Errorf("receiver: %w", err)
	}
	return r, nil
}

// Run receives until ctx is done, then reads what is still queued (up to
// 64 batches per queue) and returns nil, or the first socket error.
func (r *Receiver) Run(ctx context.Context) error {
	if !r.cfg.Pin {
		return r.run(ctx)
	}
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // for good: the pinned thread exits with the goroutine
		if err := nic.PinThread(r.cfg.CPU); err != nil {
			done <- fmt.Errorf("receiver: %w", err)
			return
		}
		done <- r.run(ctx)
	}()
	return <-done
}

func (r *Receiver) run(ctx context.Context) error {
	done := ctx.Done()
	idle := 0
	for {
		select {
		case <-done:
			for range receiverDrain {
				if r.pollAll() == 0 {
					break
				}
			}
			return nil
		default:
		}
		if r.pollAll() > 0 {
			idle = 0
			continue
		}
		if idle++; idle < receiverIdlePolls || r.cfg.BusyPoll {
			continue
		}
		if err := nic.WaitAny(receiverWait, r.xs...); err != nil {
			return fmt.Errorf("receiver on %s: %w", r.cfg.Iface, err)
		}
	}
}

// pollAll reads one batch from each queue and returns the frames read.
func (r *Receiver) pollAll() int {
	n := 0
	for _, x := range r.xs {
		n += r.core.poll(x, r.d[:], nanotime)
	}
	if n > 0 {
		r.frames.Store(r.core.frames)
	}
	return n
}

// Frames returns the number of frames received so far. It is safe to call
// while Run runs.
func (r *Receiver) Frames() uint64 { return r.frames.Load() }

// Stats returns what the receiver saw since it was made or last Reset.
// Not while Run runs.
func (r *Receiver) Stats() RxStats { return r.core.stats() }

// Reset forgets everything counted. Not while Run runs.
func (r *Receiver) Reset() {
	r.core = rxCore{}
	r.frames.Store(0)
}

// Counts returns the steering program's counters: frames redirected to the
// sockets (Packets, Bytes), flooded and without a socket. Frames the
// sockets then dropped (a full RX ring) show in the difference with
// Frames, and in QueueStats.
func (r *Receiver) Counts() (Counts, error) { return r.p.counts() }

// QueueStats returns the sockets' counters, per queue.
func (r *Receiver) QueueStats() ([]nic.XDPStats, error) {
	var out []nic.XDPStats
	var errs []error
	for _, x := range r.xs {
		s, err := x.Stats()
		out = append(out, s)
		errs = append(errs, err)
	}
	return out, errors.Join(errs...)
}

// Mode returns the mode the program was attached in.
func (r *Receiver) Mode() nic.AttachMode { return r.p.mode }

// Close detaches the program and closes the sockets. Further calls do
// nothing.
func (r *Receiver) Close() error {
	errs := []error{r.p.close()}
	for _, x := range r.xs {
		errs = append(errs, x.Close())
	}
	return errors.Join(errs...)
}
