package suite

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"

	"github.com/culvert-lb/culvert/appliance"
	"github.com/culvert-lb/culvert/bench/lab"
	"github.com/culvert-lb/culvert/bench/peer"
	"github.com/culvert-lb/culvert/bench/pktgen"
	"github.com/culvert-lb/culvert/internal/header"
	"github.com/culvert-lb/culvert/nic"
)

// Run measures everything opt asks for and returns the report. It needs
// root. A DUT that fails is reported with its error and the run goes on.
func Run(ctx context.Context, opt Options) (*Report, error) {
	opt = opt.withDefaults()
	if os.Geteuid() != 0 {
		return nil, errors.New("bench: needs root (network namespaces, XDP, AF_XDP)")
	}
	if runtime.NumCPU() < 2 {
		return nil, errors.New("bench: needs at least 2 CPUs (generator and device under test)")
	}
	rep := &Report{Started: time.Now(), Options: opt, CPUs: runtime.NumCPU()}
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		rep.Kernel = unix.ByteSliceToString(u.Release[:])
	}
	b := &bencher{opt: opt}
	for _, size := range opt.Sizes {
		for _, dut := range opt.DUTs {
			if err := ctx.Err(); err != nil {
				return rep, err
			}
			t := b.throughput(ctx, dut, size)
			rep.Throughput = append(rep.Throughput, t)
			b.progress("%s %dB: %s\n", dut, size, t.line())
		}
	}
	for _, target := range opt.Conns {
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		c := b.connRate(ctx, target)
		rep.Conns = append(rep.Conns, c)
		b.progress("conns %s: %.0f/s (%.0f-%.0f) %s\n", target, c.Rate.Median, c.Rate.Min, c.Rate.Max, c.Error)
	}
	if !opt.NoTrafgen {
		g := b.generatorVsTrafgen(ctx)
		rep.Generator = &g
	}
	rep.Took = time.Since(rep.Started)
	return rep, nil
}

type bencher struct {
	opt       Options
	profiles  int  // Culvert daemons started with a profile
	kernelDUT bool // the DUT of the lab being placed runs in the kernel (no AF_XDP worker)
}

func (b *bencher) progress(format string, a ...any) {
	if b.opt.Progress != nil {
		fmt.Fprintf(b.opt.Progress, "\r\033[K"+format, a...)
	}
}

func (t Throughput) line() string {
	if t.Error != "" {
		return "error: " + t.Error
	}
	s := fmt.Sprintf("%.0f pps (%.0f-%.0f), %.2f Gbit/s, loss %.4f%%", t.PPS.Median, t.PPS.Min, t.PPS.Max, t.Gbps.Median, 100*t.Loss.Median)
	if t.GenLimited {
		s += " (generator-limited)"
	}
	if t.Latency != nil && t.Latency.Error == "" {
		s += fmt.Sprintf(", latency p50 %.0fµs p99 %.0fµs", t.Latency.P50, t.Latency.P99)
	}
	return s
}

// rig is one lab with a DUT, the generator and the sinks.
type rig struct {
	b     *bencher
	lab   *lab.Lab
	dut   string
	size  int
	q     *nic.XDP
	tmpl  *pktgen.Template
	sinks []*pktgen.XDPSink
	stop  []func()
	notes []string
}

func (r *rig) close() {
	for i := len(r.stop) - 1; i >= 0; i-- {
		r.stop[i]()
	}
	for _, s := range r.sinks {
		s.Close()
	}
	if r.q != nil {
		r.q.Close()
	}
	if r.lab != nil {
		r.lab.Down()
	}
}

// newRig makes a fresh two-armed lab, starts dut in its appliance
// namespace and the generator on the router's uplink.
func (b *bencher) newRig(ctx context.Context, dut string, size int) (*rig, error) {
	r := &rig{b: b, dut: dut, size: size}
	l, err := lab.Up(ctx, lab.Options{Topology: lab.TwoArmed, DSR: dut == DUTCulvertDSR || dut == DUTXDPFwd, NoServers: true})
	if err != nil {
		return nil, err
	}
	r.lab = l
	ok := false
	defer func() {
		if !ok {
			r.close()
		}
	}()
	if err := b.startDUT(ctx, r); err != nil {
		return nil, fmt.Errorf("%s: %w", dut, err)
	}
	if err := b.place(l, dut == DUTXDPFwd || dut == DUTNFTables); err != nil {
		return nil, fmt.Errorf("placement: %w", err)
	}
	if err := r.openGenerator(size); err != nil {
		return nil, err
	}
	if err := teachBridge(l); err != nil {
		return nil, err
	}
	ok = true
	return r, nil
}

// place gives the appliance's interfaces threaded NAPI pinned to the DUT's
// CPU, so that the receive path runs there and not in the generator's
// softirq. A veth has NAPI only with an XDP program attached or GRO on:
// call it once the DUT is up; a DUT without XDP (nftables, HAProxy) gets
// GRO turned on (it merges nothing of the generator's UDP).
func (b *bencher) place(l *lab.Lab, kernelDUT bool) error {
	var errs []error
	if b.opt.BusyPoll && !kernelDUT {
		for _, ln := range []*lab.Link{l.ClientSide, l.ServerSide} {
			for _, kv := range [][2]string{{"napi_defer_hard_irqs", "2"}, {"gro_flush_timeout", "200000"}} {
				if err := peer.WriteSysfs(l.Appliance, ln.Name, kv[0], kv[1]); err != nil {
					errs = append(errs, err)
				}
			}
		}
	}
	if b.opt.SenderNAPI {
		return errors.Join(errs...)
	}
	// With busy polling the worker runs the NAPI itself (see
	// Options.BusyPoll).
	if b.opt.BusyPoll && !kernelDUT {
		return errors.Join(errs...)
	}
	for _, ln := range []*lab.Link{l.ClientSide, l.ServerSide} {
		if err := peer.ThreadedNAPI(l.Appliance, ln.Name, true); err != nil {
			gerr := l.Appliance.Do(func() error { return lab.SetGRO(ln.Name, true) })
			if gerr == nil {
				err = peer.ThreadedNAPI(l.Appliance, ln.Name, true)
			}
			if err != nil {
				errs = append(errs, errors.Join(err, gerr))
				continue
			}
		}
		ts, err := peer.PinNAPIThreads(l.Appliance, ln.Name, b.opt.DUTCPU)
		if err != nil {
			errs = append(errs, err)
		}
		// The NAPI thread shares the DUT's CPU with a worker that
		// busy-polls while traffic flows: as a real NIC's interrupt and
		// softirq would, it preempts the worker (SCHED_FIFO), or the
		// veth's 256-frame ring overflows while it waits its turn.
		for _, th := range ts {
			if err := setFIFO(th.PID, napiPriority); err != nil {
				errs = append(errs, fmt.Errorf("napi thread %d: %w", th.PID, err))
			}
		}
	}
	return errors.Join(errs...)
}

// teachBridge makes every host on the server segment send a frame, so the
// bridge knows where each MAC is and floods nothing during the trials.
func teachBridge(l *lab.Lab) error {
	router := l.Router.LinkOn(lab.SegmentServer).Addr.Addr()
	for _, h := range append([]*lab.Host{l.Appliance}, l.Backends...) {
		c, err := h.Dial("udp4", netip.AddrPortFrom(router, 9).String())
		if err != nil {
			return fmt.Errorf("teach the bridge: %w", err)
		}
		_, err = c.Write([]byte{0})
		c.Close()
		if err != nil {
			return fmt.Errorf("teach the bridge: %s: %w", h.Name, err)
		}
	}
	time.Sleep(50 * time.Millisecond)
	return nil
}

// startDUT starts the device under test in the lab's appliance namespace.
func (b *bencher) startDUT(ctx context.Context, r *rig) error {
	l := r.lab
	switch r.dut {
	case DUTXDPFwd:
		var f *peer.XDPForwarder
		err := l.Appliance.Do(func() error {
			var err error
			f, err = peer.StartXDPForwarder(l, peer.XDPForwarderConfig{})
			return err
		})
		if err != nil {
			return err
		}
		r.stop = append(r.stop, func() { f.Close() })
	case DUTReflector:
		rf, err := peer.StartReflector(l, peer.ReflectorConfig{CPU: b.opt.DUTCPU, BusyPoll: b.opt.BusyPoll})
		if err != nil {
			return err
		}
		r.stop = append(r.stop, func() { rf.Stop() })
	case DUTNFTables:
		n, err := peer.StartNFTables(l, peer.NFTablesConfig{})
		if err != nil {
			return err
		}
		r.notes = append(r.notes, n.Notes()...)
		r.stop = append(r.stop, func() { n.Close() })
	case DUTCulvertNAT, DUTCulvertDSR, DUTCulvertIPIP:
		stop, err := b.startCulvert(ctx, l, strings.TrimPrefix(r.dut, "culvert-"))
		if err != nil {
			return err
		}
		r.stop = append(r.stop, stop)
	default:
		return fmt.Errorf("unknown device under test %q", r.dut)
	}
	return nil
}

// startCulvert runs `culvert run` in the appliance's namespace, two-armed,
// with its worker on the DUT's CPU.
func (b *bencher) startCulvert(ctx context.Context, l *lab.Lab, mode string) (func(), error) {
	if b.opt.Exe == "" {
		return nil, errors.New("no culvert binary (Options.Exe)")
	}
	dir, err := os.MkdirTemp("", "culvert-bench-")
	if err != nil {
		return nil, err
	}
	spec := appliance.Default(mode)
	spec.Interfaces = []appliance.InterfaceSpec{
		{Name: l.ClientSide.Name, Queues: l.ClientSide.Queues, Role: appliance.RoleClient},
		{Name: l.ServerSide.Name, Queues: l.ServerSide.Queues, Role: appliance.RoleServer},
	}
	spec.Gateway = l.Gateway().Addr.Addr()
	spec.WorkerCPUs = []int{b.opt.DUTCPU}
	spec.BusyPoll = b.opt.BusyPoll
	spec.MaxFlows = 1 << 18
	for si := range spec.Services {
		for i := range spec.Services[si].Backends {
			spec.Services[si].Backends[i].Address = l.Backends[i%len(l.Backends)].Addr
		}
	}
	cfg, err := appliance.Marshal(&spec)
	if err != nil {
		return nil, err
	}
	path := filepath.Join(dir, "culvert.yaml")
	if err := os.WriteFile(path, cfg, 0o644); err != nil {
		return nil, err
	}
	log, err := os.Create(filepath.Join(dir, "culvert.log"))
	if err != nil {
		return nil, err
	}
	args := []string{"run", "--config", path, "--control", filepath.Join(dir, "culvert.sock")}
	if b.opt.ProfileDir != "" {
		b.profiles++
		args = append(args, "--cpuprofile", filepath.Join(b.opt.ProfileDir, fmt.Sprintf("culvert-%s-%d.pprof", mode, b.profiles)))
	}
	c := l.Appliance.Command(b.opt.Exe, args...)
	c.Env = append(os.Environ(), b.opt.Env...)
	c.Stdout, c.Stderr = log, log
	if err := c.Start(); err != nil {
		return nil, err
	}
	stop := func() {
		c.Process.Signal(syscall.SIGTERM)
		done := make(chan struct{})
		go func() { c.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			c.Process.Kill()
			<-done
		}
		log.Close()
		os.RemoveAll(dir)
	}
	// Ready when the steering program is on the client side.
	deadline := time.Now().Add(10 * time.Second)
	for on, _ := l.Appliance.XDPAttached(l.ClientSide.Name); !on; on, _ = l.Appliance.XDPAttached(l.ClientSide.Name) {
		if time.Now().After(deadline) || ctx.Err() != nil {
			stop()
			out, _ := os.ReadFile(filepath.Join(dir, "culvert.log"))
			return nil, fmt.Errorf("culvert did not attach within 10 s: %s", out)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return stop, nil
}

// attachSinks puts a counting sink on every backend.
func (r *rig) attachSinks() error {
	for _, h := range r.lab.Backends {
		var s *pktgen.XDPSink
		err := h.Do(func() error {
			var err error
			s, err = pktgen.NewXDPSink(pktgen.SinkConfig{Iface: h.Links[0].Name, Match: r.sinkMatch()})
			return err
		})
		if err != nil {
			return err
		}
		r.sinks = append(r.sinks, s)
	}
	return nil
}

// sinkMatch is what reaches a backend: UDP to port 7 (any address: nat
// rewrites it), or, for ipip, the encapsulated form.
func (r *rig) sinkMatch() pktgen.Match {
	return pktgen.Match{Proto: header.ProtoUDP, DstPort: 7, Encap: r.dut == DUTCulvertIPIP}
}

func (r *rig) received() (uint64, error) {
	var total uint64
	for _, s := range r.sinks {
		c, err := s.Counts()
		if err != nil {
			return 0, err
		}
		total += c.Packets
	}
	return total, nil
}

// openGenerator builds the generator's template (UDP from the client's
// address to the VIP's port 7, Options.Flows flows, size bytes) and opens
// its AF_XDP queue on the router's uplink, toward the appliance's client
// side.
func (r *rig) openGenerator(size int) error {
	l := r.lab
	up := l.Router.LinkOn(lab.SegmentUplink)
	spec := pktgen.Spec{Kind: pktgen.UDP, Src: netip.MustParseAddr("198.19.0.2"), Dst: netip.AddrPortFrom(l.VIP, 7),
		Flows: r.b.opt.Flows, FrameSize: size}
	copy(spec.SrcMAC[:], up.MAC)
	copy(spec.DstMAC[:], l.ClientSide.MAC)
	var err error
	if r.tmpl, err = pktgen.NewTemplate(spec); err != nil {
		return err
	}
	err = l.Router.Do(func() error {
		var err error
		r.q, err = nic.OpenXDP(nic.XDPConfig{Iface: up.Name})
		return err
	})
	if err != nil {
		return fmt.Errorf("generator queue: %w", err)
	}
	return nil
}

// napiPriority is the SCHED_FIFO priority of the DUT's NAPI threads, that
// of the kernel's threaded interrupt handlers.
const napiPriority = 50

// setFIFO makes thread pid SCHED_FIFO at prio.
func setFIFO(pid, prio int) error {
	return unix.SchedSetAttr(pid, &unix.SchedAttr{Size: unix.SizeofSchedAttr, Policy: unix.SCHED_FIFO, Priority: uint32(prio)}, 0)
}
