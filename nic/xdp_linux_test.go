package nic

import (
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Privileged tests of the AF_XDP queue on a veth pair (xdp_lab_linux_test.go).

// runReflector runs a reflector on x in its own goroutine, sleeping in
// Wait when idle, until stop is closed; it then drains what Transmit had
// refused and returns the reflector.
func runReflector(x *XDP, shift int, stop <-chan struct{}) <-chan *reflector {
	done := make(chan *reflector, 1)
	go func() {
		r := newReflector(x, shift)
		for {
			select {
			case <-stop:
				for len(r.out) > 0 {
					r.step()
				}
				done <- r
				return
			default:
			}
			if r.step() == 0 && len(r.out) == 0 {
				if err := x.Wait(20 * time.Millisecond); err != nil {
					panic(err)
				}
			}
		}
	}()
	return done
}

// readReplies reads datagrams on c until it has n distinct ones or the
// deadline passes, and returns the set of payloads.
func readReplies(t *testing.T, c *net.UDPConn, n int, deadline time.Time) map[string]bool {
	t.Helper()
	got := map[string]bool{}
	buf := make([]byte, 2048)
	c.SetReadDeadline(deadline)
	for len(got) < n {
		k, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		if from.Addr() != labAddr || from.Port() != labPort {
			t.Errorf("reply from %v", from)
		}
		got[string(buf[:k])] = true
	}
	return got
}

func TestXDPReflect(t *testing.T) {
	for _, c := range []struct {
		name  string
		cfg   XDPConfig
		want  int // frame offset in its chunk
		burst int
	}{
		{"defaults", XDPConfig{}, 256, 100},
		{"headroom 320 in 4k frames", XDPConfig{Headroom: 320, FrameSize: 4096, Frames: 1024}, 320, 100},
		{"small rings", XDPConfig{Frames: 64, FillSize: 32, RxSize: 32, TxSize: 32, CompSize: 32}, 256, 16},
		// Receive runs the veth's NAPI itself when the ring is empty.
		{"busy poll", XDPConfig{BusyPoll: true}, 256, 100},
	} {
		t.Run(c.name, func(t *testing.T) {
			l := newXSKLab(t)
			x := l.open(c.cfg)
			if x.Mode() != ModeCopy || x.Headroom() != c.want {
				t.Fatalf("mode %v headroom %d, want copy and %d", x.Mode(), x.Headroom(), c.want)
			}
			udp := l.peerUDP(40000)
			stop := make(chan struct{})
			done := runReflector(x, 20, stop)
			defer func() {
				select {
				case <-stop:
				default:
					close(stop)
					<-done
				}
			}()

			const n = 300
			got := map[string]bool{}
			for i := 0; i < n; {
				// Closed loop: a burst no bigger than the fill ring, then
				// its replies, so the test never outruns a small ring.
				burst := min(c.burst, n-i)
				for j := range burst {
					if err := l.send(l.frame(40000, i+j, 0)); err != nil {
						t.Fatal(err)
					}
				}
				for p := range readReplies(t, udp, burst, time.Now().Add(3*time.Second)) {
					got[p] = true
				}
				i += burst
			}
			close(stop)
			r := <-done
			if len(got) != n {
				t.Errorf("peer got %d of %d reflected datagrams", len(got), n)
			}
			for i := range n {
				if p := fmt.Sprintf("culvert %06d", i); !got[p] {
					t.Errorf("no reply %q", p)
					break
				}
			}
			// Every received frame sat behind the headroom: the reflector
			// moved odd frames 20 bytes back into it, and those arrived too.
			if r.n < n {
				t.Errorf("reflector saw %d lab frames", r.n)
			}
			x.Wait(0) // reap the last completions
			s, err := x.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if s.Transmitted < n || s.Completed != s.Transmitted || s.Received < n || s.TXKicks == 0 ||
				s.Stray != 0 || s.Kernel.TxInvalidDescs != 0 || s.Kernel.RxInvalidDescs != 0 || s.Kernel.RxDropped != 0 {
				t.Errorf("stats %+v", s)
			}
			if own := x.port.owners(); own[frameHeld] != 0 || own[frameTX] != 0 {
				t.Errorf("chunks still out after the run: %v", own)
			}
			t.Logf("stats: rx %d tx %d kicks %d errors %v fill-empty %d waits %d kernel %+v",
				s.Received, s.Transmitted, s.TXKicks, s.TXErrors, s.FillRingEmpty, s.Waits, s.Kernel)
		})
	}
}

func TestXDPFrameOffset(t *testing.T) {
	l := newXSKLab(t)
	x := l.open(XDPConfig{Headroom: 300})
	if err := l.send(l.frame(40000, 1, 0)); err != nil {
		t.Fatal(err)
	}
	if err := x.Wait(2 * time.Second); err != nil {
		t.Fatal(err)
	}
	d := make([]Desc, 4)
	n := x.Receive(d)
	if n != 1 {
		t.Fatalf("received %d", n)
	}
	if off := int(d[0].Addr) & (x.ChunkSize() - 1); off != 300 || x.Headroom() != 300 {
		t.Errorf("frame at offset %d, Headroom() %d, want 300", off, x.Headroom())
	}
	f := x.UMEM()[d[0].Addr : d[0].Addr+uint64(d[0].Len)]
	if !isLabUDP(f) || !strings.HasPrefix(string(f[42:]), "culvert 000001") {
		t.Errorf("frame %x", f)
	}
	x.Release(d[:n])
}

func TestXDPZeroCopyFallback(t *testing.T) {
	l := newXSKLab(t)
	x := l.open(XDPConfig{ZeroCopy: true})
	// veth has no zero-copy support: the bind falls back and says why.
	if x.Mode() != ModeCopy || x.ZeroCopyError() == nil {
		t.Fatalf("mode %v, zero-copy error %v", x.Mode(), x.ZeroCopyError())
	}
	t.Logf("zero-copy refused: %v", x.ZeroCopyError())
	udp := l.peerUDP(40001)
	stop := make(chan struct{})
	done := runReflector(x, 0, stop)
	l.send(l.frame(40001, 7, 0))
	got := readReplies(t, udp, 1, time.Now().Add(3*time.Second))
	close(stop)
	<-done
	if len(got) != 1 {
		t.Fatal("no reply through the fallen-back socket")
	}
}

// cpuTime returns the process's user+system CPU time.
func cpuTime(t *testing.T) time.Duration {
	var ru unix.Rusage
	if err := unix.Getrusage(unix.RUSAGE_SELF, &ru); err != nil {
		t.Fatal(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// TestXDPWaitSleeps: with no traffic Wait sleeps for its timeout without
// using the CPU. A busy-polling loop over the same time is the control:
// it must use most of a CPU, or the measurement shows nothing.
func TestXDPWaitSleeps(t *testing.T) {
	l := newXSKLab(t)
	x := l.open(XDPConfig{})
	drainXSK(x) // so that the wait starts idle
	d := make([]Desc, 64)

	const wait = 400 * time.Millisecond
	c0, t0 := cpuTime(t), time.Now()
	if err := x.Wait(wait); err != nil {
		t.Fatal(err)
	}
	cpu, wall := cpuTime(t)-c0, time.Since(t0)
	if n := x.Receive(d); n > 0 {
		t.Skipf("traffic arrived during the wait (%d frames); measurement void", n)
	}
	if wall < wait {
		t.Errorf("Wait returned after %v, before its %v timeout", wall, wait)
	}
	c0, t0 = cpuTime(t), time.Now()
	for time.Since(t0) < 200*time.Millisecond {
		x.Release(d[:x.Receive(d)])
	}
	spin, spinWall := cpuTime(t)-c0, time.Since(t0)
	waitShare, spinShare := cpu.Seconds()/wall.Seconds(), spin.Seconds()/spinWall.Seconds()
	t.Logf("Wait(%v): %v wall, %v CPU (%.2f%% of a CPU); busy poll: %v wall, %v CPU (%.0f%%)",
		wait, wall, cpu, 100*waitShare, spinWall, spin, 100*spinShare)
	if waitShare > 0.05 {
		t.Errorf("Wait used %.1f%% of a CPU while idle", 100*waitShare)
	}
	// The control: on a machine where other work competes for the CPU a
	// spinning loop gets less than a whole one, but still far more than
	// Wait; if it does not, the measurement cannot tell them apart.
	if spinShare < 10*waitShare || spinShare < 0.05 {
		t.Errorf("control: busy polling used %.1f%% of a CPU, Wait %.1f%%: the measurement shows nothing",
			100*spinShare, 100*waitShare)
	}
}

// TestXDPWaitWakes: a Wait with a long timeout returns soon after a frame
// arrives.
func TestXDPWaitWakes(t *testing.T) {
	l := newXSKLab(t)
	x := l.open(XDPConfig{})
	drainXSK(x)
	d := make([]Desc, 64)
	const delay = 100 * time.Millisecond
	go func() {
		time.Sleep(delay)
		l.send(l.frame(40000, 1, 0))
	}()
	t0 := time.Now()
	if err := x.Wait(10 * time.Second); err != nil {
		t.Fatal(err)
	}
	took := time.Since(t0)
	n := x.Receive(d)
	x.Release(d[:n])
	t.Logf("woke after %v with %d frames", took, n)
	if n == 0 || took > delay+500*time.Millisecond {
		t.Errorf("Wait returned after %v with %d frames; the frame was sent after %v", took, n, delay)
	}
}

// TestXDPLinkDown: sendto fails with ENETDOWN while the link is down;
// Transmit counts it and keeps the frames on the ring, and they go out
// once the link is back.
func TestXDPLinkDown(t *testing.T) {
	l := newXSKLab(t)
	x := l.open(XDPConfig{})
	for i := range 4 {
		l.send(l.frame(40000, i, 0))
	}
	d := make([]Desc, 64)
	n := 0
	for deadline := time.Now().Add(2 * time.Second); n < 4 && time.Now().Before(deadline); {
		x.Wait(100 * time.Millisecond)
		k := x.Receive(d[n:])
		for _, y := range d[n : n+k] {
			if isLabUDP(x.UMEM()[y.Addr : y.Addr+uint64(y.Len)]) {
				d[n] = y
				n++
			} else {
				x.Release([]Desc{y})
			}
		}
	}
	if n != 4 {
		t.Fatalf("received %d", n)
	}
	l.ns.MustExec(t, "ip", "link", "set", labIface, "down")
	if got := x.Transmit(d[:n]); got != n {
		t.Fatalf("Transmit took %d of %d with the link down", got, n)
	}
	s, _ := x.Stats()
	if s.TXErrors[TXErrNetDown] == 0 || s.Completed != 0 {
		t.Fatalf("link down: errors %v completed %d", s.TXErrors, s.Completed)
	}
	l.ns.MustExec(t, "ip", "link", "set", labIface, "up")
	for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline); {
		x.Wait(50 * time.Millisecond)
		x.Release(d[:x.Receive(d)])
		if s, _ = x.Stats(); s.Completed == uint64(n) {
			break
		}
	}
	if s.Completed != uint64(n) {
		t.Fatalf("after link up: %+v", s)
	}
	if own := x.port.owners(); own[frameTX] != 0 || own[frameHeld] != 0 {
		t.Fatalf("owners %v", own)
	}
}

func TestXDPNoAllocs(t *testing.T) {
	l := newXSKLab(t)
	x := l.open(XDPConfig{})
	d := make([]Desc, 64)
	frame := l.frame(40000, 0, 0)
	for _, c := range []struct {
		name string
		give func([]Desc)
	}{
		{"Transmit", func(d []Desc) { x.Transmit(d) }},
		{"Release", x.Release},
		{"Pass", x.Pass},
		{"Wait(0)", func(d []Desc) { x.Release(d); x.Wait(0) }},
	} {
		t.Run(c.name, func(t *testing.T) {
			a := testing.AllocsPerRun(50, func() {
				l.send(frame) // outside the queue; a raw sendto with a reused sockaddr would not allocate either
				c.give(d[:x.Receive(d)])
			})
			// l.send allocates its sockaddr (x/sys/unix): measure it alone.
			base := testing.AllocsPerRun(50, func() { l.send(frame) })
			if a-base != 0 {
				t.Fatalf("%v allocations per round beyond the sender's %v", a, base)
			}
		})
	}
}

func TestXDPClose(t *testing.T) {
	l := newXSKLab(t)
	var x *XDP
	if err := l.ns.Do(func() (err error) { x, err = OpenXDP(XDPConfig{Iface: labIface}); return }); err != nil {
		t.Fatal(err)
	}
	if x.FD() < 0 {
		t.Fatal("no fd")
	}
	if err := x.Close(); err != nil {
		t.Fatal(err)
	}
	if err := x.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if x.FD() != -1 || x.UMEM() != nil {
		t.Fatalf("after Close: fd %d, umem %d bytes", x.FD(), len(x.UMEM()))
	}
	if _, err := x.Stats(); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Stats after Close: %v", err)
	}
	if err := x.Wait(time.Millisecond); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Wait after Close: %v", err)
	}
}

func TestOpenXDPErrors(t *testing.T) {
	l := newXSKLab(t)
	for _, c := range []struct {
		name string
		cfg  XDPConfig
		want string
	}{
		{"no such interface", XDPConfig{Iface: "nosuch0"}, "nosuch0"},
		{"queue beyond the device", XDPConfig{Iface: labIface, QueueID: 7}, "bind"},
		{"invalid config", XDPConfig{Iface: labIface, FrameSize: 1000}, "frame size"},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := l.ns.Do(func() error {
				x, err := OpenXDP(c.cfg)
				if err == nil {
					x.Close()
				}
				return err
			})
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want one about %q", err, c.want)
			}
		})
	}
	// A second socket on a bound queue is refused, and the first keeps
	// working.
	x := l.open(XDPConfig{})
	err := l.ns.Do(func() error {
		y, err := OpenXDP(XDPConfig{Iface: labIface})
		if err == nil {
			y.Close()
		}
		return err
	})
	if err == nil {
		t.Fatal("second socket on queue 0 bound")
	}
	t.Logf("second socket on queue 0: %v", err)
	if _, err := x.Stats(); err != nil {
		t.Fatal(err)
	}
}

// TestXSKPortAllocReserve: Alloc takes free chunks only while the kernel
// keeps half the fill ring (or half the UMEM) to receive into, counting
// the fill ring's untaken entries and the free chunks a refill would post.
// Unprivileged: the fake kernel of ring_test.go.
func TestXSKPortAllocReserve(t *testing.T) {
	type step struct {
		deliver int // frames the kernel receives first (into fill-ring chunks)
		receive bool
		release bool // give back everything the worker holds
		ask     int
		want    int
	}
	for _, c := range []struct {
		name         string
		frames, fill int
		steps        []step
	}{
		{"fill ring full: every free chunk", 512, 128, []step{
			{ask: 512, want: 384}, // 128 on the fill ring, 384 free, reserve 64
			{ask: 1, want: 0},     // none free
		}},
		{"kernel drained the fill ring", 512, 128, []step{
			{deliver: 100, ask: 512, want: 348}, // 28 on the ring + 384 free - 64
			{ask: 1, want: 0},                   // 28 + 36 left = the reserve
			// The worker gives back all 448; the 36 free went to the fill ring.
			{receive: true, release: true, ask: 512, want: 448},
		}},
		{"small UMEM: half of it", 64, 2048, []step{
			{ask: 64, want: 0}, // all 64 on the fill ring, none free
			{deliver: 40, receive: true, release: true, ask: 64, want: 32}, // 24 on the ring + 40 free - 32
			{release: true, ask: 64, want: 32},
			{deliver: 24, ask: 64, want: 0}, // fill ring empty, 8 free
		}},
	} {
		t.Run(c.name, func(t *testing.T) {
			f := newFakeXSK(t, XDPConfig{Frames: c.frames, FillSize: c.fill})
			var held []Desc
			for i, s := range c.steps {
				for range s.deliver {
					if !f.deliver([]byte("rx")) {
						t.Fatalf("step %d: deliver failed", i)
					}
				}
				if s.receive {
					d := make([]Desc, c.frames)
					held = append(held, d[:f.port.Receive(d)]...)
				}
				if s.release {
					f.port.Release(held)
					held = held[:0]
				}
				d := make([]Desc, s.ask)
				n := f.port.Alloc(d)
				if n != s.want {
					t.Fatalf("step %d: Alloc(%d) = %d, want %d (owners %v)", i, s.ask, n, s.want, f.port.owners())
				}
				for _, x := range d[:n] {
					if x.Len != 0 || x.Addr%uint64(f.cfg.FrameSize) != uint64(f.port.headroom) || f.port.state[x.Addr>>f.port.shift] != frameHeld {
						t.Fatalf("step %d: allocated %+v in state %v", i, x, f.port.state[x.Addr>>f.port.shift])
					}
				}
				held = append(held, d[:n]...)
				f.check()
				if rx := int(f.port.fill.pending()) + len(f.port.free); n > 0 && rx < int(f.port.allocReserve) {
					t.Fatalf("step %d: kernel left with %d buffers, reserve %d", i, rx, f.port.allocReserve)
				}
			}
			if got := f.c.snapshot().Allocated; got != uint64(sumWant(c.steps, func(s step) int { return s.want })) {
				t.Fatalf("Allocated %d", got)
			}
		})
	}
}

func sumWant[T any](xs []T, f func(T) int) int {
	n := 0
	for _, x := range xs {
		n += f(x)
	}
	return n
}

// TestXSKPortAllocTransmit: allocated chunks carry frames the worker
// writes, go out through Transmit (grown into the headroom too), and come
// back to the free stack on completion, where the next Alloc finds them.
func TestXSKPortAllocTransmit(t *testing.T) {
	f := newFakeXSK(t, XDPConfig{Frames: 16, FillSize: 8})
	d := make([]Desc, 8)
	if n := f.port.Alloc(d); n != 8 {
		t.Fatalf("Alloc = %d, want 8", n)
	}
	for i := range d {
		if i%2 == 1 {
			d[i].Addr -= 20 // as a frame grown for IP-in-IP
		}
		d[i].Len = uint32(copy(f.umem[d[i].Addr:], fmt.Sprintf("copied %d", i)))
	}
	if n := f.port.Transmit(d); n != 8 {
		t.Fatalf("Transmit took %d", n)
	}
	if len(f.sent) != 8 || string(f.sent[7]) != "copied 7" {
		t.Fatalf("sent %q", f.sent)
	}
	// Completions are on the ring, not reaped: Alloc reaps them.
	if own := f.port.owners(); own[frameTX] != 8 {
		t.Fatalf("owners %v", own)
	}
	if n := f.port.Alloc(d); n != 8 {
		t.Fatalf("Alloc after completion = %d, want 8", n)
	}
	f.port.Release(d)
	f.check()
	if own := f.port.owners(); own[frameHeld] != 0 || own[frameTX] != 0 {
		t.Fatalf("owners %v", own)
	}
	s := f.c.snapshot()
	if s.Allocated != 16 || s.Transmitted != 8 || s.Completed != 8 || s.Released != 8 {
		t.Fatalf("stats %+v", s)
	}
	// An allocated chunk is held: giving it back twice is a worker bug.
	f.port.Alloc(d[:1])
	f.port.Release(d[:1])
	defer func() {
		if r := recover(); r == nil || !strings.Contains(fmt.Sprint(r), "not held") {
			t.Fatalf("recovered %v, want a panic about a chunk not held", r)
		}
	}()
	f.port.Release(d[:1])
}

// TestXSKPortAllocNoAllocs: Alloc, fill and Transmit allocate nothing.
func TestXSKPortAllocNoAllocs(t *testing.T) {
	f := newFakeXSK(t, XDPConfig{Frames: 512, FillSize: 256})
	f.discard = true
	d := make([]Desc, 64)
	a := testing.AllocsPerRun(100, func() {
		n := f.port.Alloc(d)
		for i := range d[:n] {
			d[i].Len = 60
		}
		f.port.Transmit(d[:n])
	})
	if a != 0 {
		t.Fatalf("%v allocations per round", a)
	}
	if f.nsent == 0 {
		t.Fatal("nothing sent: the measurement shows nothing")
	}
}

// drainXSK releases whatever arrives on x until it has been quiet for a
// while (IPv6 autoconfiguration of the peer may still send a frame).
func drainXSK(x *XDP) {
	d := make([]Desc, 64)
	for x.Wait(50*time.Millisecond) == nil {
		n := x.Receive(d)
		if n == 0 {
			return
		}
		x.Release(d[:n])
	}
}

// TestWaitAny: one sleep over two sockets on two interfaces (as a
// two-armed worker makes): it sleeps its timeout when both are idle
// without using the CPU, returns at once when one already has frames, and
// wakes when a frame reaches either.
func TestWaitAny(t *testing.T) {
	la, lb := newXSKLab(t), newXSKLab(t)
	xa, xb := la.open(XDPConfig{}), lb.open(XDPConfig{})
	drainXSK(xa)
	drainXSK(xb)
	d := make([]Desc, 64)

	t.Run("idle", func(t *testing.T) {
		const wait = 300 * time.Millisecond
		c0, t0 := cpuTime(t), time.Now()
		if err := WaitAny(wait, xa, xb); err != nil {
			t.Fatal(err)
		}
		cpu, wall := cpuTime(t)-c0, time.Since(t0)
		if n := xa.Receive(d) + xb.Receive(d[32:]); n > 0 {
			t.Skipf("traffic arrived during the wait (%d frames); measurement void", n)
		}
		t.Logf("WaitAny(%v): %v wall, %v CPU", wait, wall, cpu)
		if wall < wait {
			t.Errorf("returned after %v, before the %v timeout", wall, wait)
		}
		if cpu > wall/20 {
			t.Errorf("used %v of CPU in %v while idle", cpu, wall)
		}
	})
	for _, c := range []struct {
		name string
		l    *xskLab
		x    *XDP
	}{{"wakes on the first", la, xa}, {"wakes on the second", lb, xb}} {
		t.Run(c.name, func(t *testing.T) {
			const delay = 100 * time.Millisecond
			go func() {
				time.Sleep(delay)
				c.l.send(c.l.frame(40000, 1, 0))
			}()
			t0 := time.Now()
			if err := WaitAny(10*time.Second, xa, xb); err != nil {
				t.Fatal(err)
			}
			took := time.Since(t0)
			n := c.x.Receive(d)
			c.x.Release(d[:n])
			if n == 0 || took > delay+time.Second {
				t.Fatalf("returned after %v with %d frames; the frame was sent after %v", took, n, delay)
			}
		})
	}
	t.Run("ready", func(t *testing.T) {
		lb.send(lb.frame(40000, 2, 0))
		time.Sleep(50 * time.Millisecond) // let the kernel put it on the RX ring
		t0 := time.Now()
		if err := WaitAny(10*time.Second, xa, xb); err != nil {
			t.Fatal(err)
		}
		if took := time.Since(t0); took > 100*time.Millisecond {
			t.Fatalf("took %v with a frame waiting", took)
		}
		xb.Release(d[:xb.Receive(d)])
	})
	t.Run("no allocations", func(t *testing.T) {
		if a := testing.AllocsPerRun(20, func() { WaitAny(0, xa, xb) }); a != 0 {
			t.Fatalf("%v allocations per call", a)
		}
		if a := testing.AllocsPerRun(5, func() { WaitAny(time.Millisecond, xa, xb) }); a != 0 {
			t.Fatalf("%v allocations per sleeping call", a)
		}
	})
	t.Run("errors", func(t *testing.T) {
		many := make([]*XDP, MaxWaitAny+1)
		for i := range many {
			many[i] = xa
		}
		if err := WaitAny(0, many...); err == nil {
			t.Fatal("WaitAny took more than MaxWaitAny queues")
		}
		if err := WaitAny(0); err != nil {
			t.Fatalf("no queues: %v", err)
		}
		closed := &XDP{sys: xskSys{fd: -1}} // what Close leaves
		if err := WaitAny(time.Millisecond, xa, closed); !errors.Is(err, net.ErrClosed) {
			t.Fatalf("with a closed queue: %v", err)
		}
	})
}
