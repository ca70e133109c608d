package peer

import (
	"errors"
	"fmt"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/culvert-lb/culvert/bench/lab"
	"github.com/culvert-lb/culvert/nic"
)

// reflectorSleep bounds one idle sleep of a loop: how long Stop may wait
// for a loop that sleeps.
const reflectorSleep = 100 * time.Millisecond

// Reflector is the AF_XDP ceiling: on each appliance interface, the
// steering program the daemon attaches (nic.Steering, the same maps) and
// one nic.XDP queue per receive queue, opened as the daemon opens them; and
// per queue index a loop shaped like dataplane.Worker.Run (batches of
// BatchSize, SpinPolls empty polls, then a sleep in poll(2)) that rewrites
// the MACs toward a next hop and transmits: no parsing, no flow table, no
// NAT. Two-armed, a frame is copied to the other interface's queue, as the
// dataplane does. Whatever Culvert adds on top of this costs the difference.
//
// Loop q owns queue q of every interface, on a goroutine locked to an OS
// thread pinned to a CPU (ReflectorConfig.CPU); the thread exits with the
// loop. Stats and Threads are safe from any goroutine at any time; Stop
// may be called more than once, from any goroutine. There is no useful zero
// value: use StartReflector.
type Reflector struct {
	steers []*nic.Steering
	queues []*nic.XDP
	loops  []*loopCounters
	tids   []int

	quit atomic.Bool
	done chan error // one value per loop

	mu      sync.Mutex
	stopped bool
	stopErr error
	closed  bool           // the queues and programs are closed
	final   nic.SteerStats // the steering counters when they were closed
}

// StartReflector opens the reflector on the appliance interfaces of l and
// starts its loops.
func StartReflector(l *lab.Lab, cfg ReflectorConfig) (*Reflector, error) {
	links := applianceLinks(l)
	toServer, toClient, err := reflectorMACs(l, cfg)
	if err != nil {
		return nil, fmt.Errorf("reflector: %w", err)
	}
	st := cfg.Steer
	if len(st.VIPs) == 0 && len(st.Services) == 0 && len(st.Locals) == 0 {
		st = labSteer(l)
	}
	nq := max(links[0].Queues, 1)
	r := &Reflector{done: make(chan error, nq)}
	err = l.Appliance.Do(func() error {
		for _, k := range links {
			s, err := nic.NewSteering(k.Name, nq)
			if err != nil {
				return fmt.Errorf("steering on %s: %w", k.Name, err)
			}
			r.steers = append(r.steers, s)
			for q := range nq {
				x, err := nic.OpenXDP(nic.XDPConfig{Iface: k.Name, QueueID: q, ZeroCopy: true, BusyPoll: cfg.BusyPoll})
				if err != nil {
					return fmt.Errorf("%s queue %d: %w", k.Name, q, err)
				}
				r.queues = append(r.queues, x)
				if err := s.SetSocket(q, x.FD()); err != nil {
					return fmt.Errorf("%s queue %d: %w", k.Name, q, err)
				}
			}
			if err := s.Update(st.VIPs, st.Services, st.Locals); err != nil {
				return fmt.Errorf("steering on %s: %w", k.Name, err)
			}
		}
		return nil
	})
	if err != nil {
		r.closeAll()
		return nil, fmt.Errorf("reflector: %w", err)
	}

	ncpu := runtime.NumCPU()
	for q := range nq {
		var arms []arm
		var xs []*nic.XDP
		for i, k := range links {
			x := r.queues[i*nq+q]
			dst := toServer
			if len(links) == 2 && i == 0 {
				dst = toClient // leaves by the client side
			}
			arms = append(arms, newArm(x, [6]byte(k.MAC), dst))
			xs = append(xs, x)
		}
		loop := &reflectLoop{arms: arms, c: new(loopCounters)}
		r.loops = append(r.loops, loop.c)
		cpu := AnyCPU
		if cfg.CPU >= 0 {
			cpu = (cfg.CPU + q) % ncpu
		}
		ready := make(chan int, 1)
		go r.run(loop, xs, cpu, ready)
		tid := <-ready
		if tid < 0 {
			err := <-r.done
			r.Stop()
			return nil, fmt.Errorf("reflector: loop %d: %w", q, err)
		}
		r.tids = append(r.tids, tid)
	}
	return r, nil
}

// run is loop q's goroutine: it sends its thread id on ready (or -1 if it
// could not pin), polls until Stop, and sends its result on r.done. The
// thread stays locked, so it exits with the goroutine rather than return
// to the scheduler pinned.
func (r *Reflector) run(loop *reflectLoop, xs []*nic.XDP, cpu int, ready chan<- int) {
	runtime.LockOSThread()
	if cpu >= 0 {
		if err := nic.PinThread(cpu); err != nil {
			ready <- -1
			r.done <- err
			return
		}
	}
	ready <- unix.Gettid()
	idle := 0
	for !r.quit.Load() {
		if loop.poll() > 0 {
			idle = 0
			continue
		}
		if idle++; idle < SpinPolls {
			continue
		}
		var err error
		if len(xs) == 1 {
			err = xs[0].Wait(reflectorSleep)
		} else {
			err = nic.WaitAny(reflectorSleep, xs...)
		}
		if err != nil {
			r.done <- err
			return
		}
	}
	r.done <- nil
}

// reflectorMACs resolves the next hops of cfg for lab l.
func reflectorMACs(l *lab.Lab, cfg ReflectorConfig) (toServer, toClient [6]byte, err error) {
	s := cfg.ToServer
	if len(s) == 0 {
		bs := segmentBackends(l)
		if len(bs) == 0 {
			return toServer, toClient, errors.New("no backend on the server segment and no ToServer MAC")
		}
		s = bs[0].LinkOn(lab.SegmentServer).MAC
	}
	if toServer, err = mac6("ToServer", s); err != nil {
		return
	}
	c := cfg.ToClient
	if len(c) == 0 {
		c = l.Gateway().MAC
	}
	toClient, err = mac6("ToClient", c)
	return
}

// Threads returns the OS thread id of each loop, by queue, for CPU
// accounting (/proc/<pid>/task/<tid>/stat).
func (r *Reflector) Threads() []int { return append([]int(nil), r.tids...) }

// Stats returns the loops' counters and the steering programs' counters
// (after Stop, the steering programs' as they were when Stop closed them).
func (r *Reflector) Stats() (ReflectorStats, error) {
	var s ReflectorStats
	sumLoops(&s, r.loops)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.closed {
		s.Steered, s.Passed, s.RedirectFailed = r.final.Redirected, r.final.Passed, r.final.RedirectFailed
		return s, nil
	}
	st, err := r.steerStats()
	s.Steered, s.Passed, s.RedirectFailed = st.Redirected, st.Passed, st.RedirectFailed
	return s, err
}

// steerStats sums the steering programs' counters.
func (r *Reflector) steerStats() (nic.SteerStats, error) {
	var sum nic.SteerStats
	var errs []error
	for _, st := range r.steers {
		ss, err := st.Stats()
		if err != nil {
			errs = append(errs, err)
			continue
		}
		sum.Redirected += ss.Redirected
		sum.Passed += ss.Passed
		sum.RedirectFailed += ss.RedirectFailed
	}
	return sum, errors.Join(errs...)
}

// Stop ends the loops and closes the queues and the steering programs;
// Stats still reports the counters afterwards. A loop that does not stop within a second is left running
// with its queues open, and reported. Later calls return the first result.
func (r *Reflector) Stop() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return r.stopErr
	}
	r.stopped = true
	r.quit.Store(true)
	var errs []error
	timeout := time.After(time.Second + reflectorSleep)
	for range r.tids {
		select {
		case err := <-r.done:
			if err != nil {
				errs = append(errs, fmt.Errorf("reflector loop: %w", err))
			}
		case <-timeout:
			r.stopErr = errors.New("reflector: a loop did not stop; its queues stay open")
			return r.stopErr
		}
	}
	r.final, _ = r.steerStats()
	r.closed = true
	if err := r.closeAll(); err != nil {
		errs = append(errs, err)
	}
	r.stopErr = errors.Join(errs...)
	return r.stopErr
}

// closeAll closes the queues and the steering programs.
func (r *Reflector) closeAll() error {
	var errs []error
	for _, x := range r.queues {
		errs = append(errs, x.Close())
	}
	for _, s := range r.steers {
		errs = append(errs, s.Close())
	}
	return errors.Join(errs...)
}

// labSteer is what the reflector steers by default: the lab's VIP with its
// HTTP, HTTPS and UDP echo ports.
func labSteer(l *lab.Lab) Steer {
	o := l.Options()
	vip := l.VIP.As4()
	return Steer{
		VIPs: [][4]byte{vip},
		Services: []nic.SteerService{
			{Addr: vip, Port: o.HTTPPort, Proto: uint8(TCP)},
			{Addr: vip, Port: o.HTTPSPort, Proto: uint8(TCP)},
			{Addr: vip, Port: o.UDPPort, Proto: uint8(UDP)},
		},
	}
}
