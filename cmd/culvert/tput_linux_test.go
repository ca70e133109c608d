package main

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/culvert-lb/culvert/appliance"
	"github.com/culvert-lb/culvert/bench/lab"
	"github.com/culvert-lb/culvert/internal/packettest"
	"github.com/culvert-lb/culvert/internal/testenv"
	"github.com/culvert-lb/culvert/nic"
)

// The first throughput figure of the AF_XDP appliance (issue 4): frames per
// second the appliance forwards in nat mode on the namespace lab, next to
// what the same generator gets through an AF_XDP socket that only reflects
// frames, the ceiling of this I/O path, in the same run.
//
//	generator                  server segment (bridge)        sinks
//	router ns, CPU 1  ───────►  appliance ns, CPU 0   ───────►  b0, b1, b2
//	AF_XDP TX, 256 flows        DUT: culvert run (nat)          XDP: count UDP/7
//	60-byte UDP frames          or the reflector                from the appliance, drop
//
// Generator: an AF_XDP socket (nic.OpenXDP, copy mode on veth) on the
// router's interface on the server segment, the appliance's segment, with
// the appliance's MAC as destination, so the router's IP forwarding is not
// in the path. It builds one frame per source port once, and per batch of
// 64 takes empty chunks with Alloc, copies frames in, and transmits; chunks
// come back after completion. Frames go client 198.19.0.2:10000-10255 ->
// VIP 198.18.1.1:7 (the default config's udp echo service).
//
// Counting: an XDP program on each backend's interface counts the UDP
// frames to port 7 from the appliance's MAC to the backend's own MAC and
// drops them, so that the backends' echo servers do not answer (their
// replies would go back through the NAT DUT, and the reflector never sees
// any); everything else passes. The rate is the sinks' count over the
// generator's window. The sinks also count such frames sent to another
// backend's MAC: a bridge that has not learned where a backend is floods
// them, which costs the DUT's CPU three extra deliveries per frame, so the
// trial teaches the bridge first and fails if more than 1% were flooded.
//
// Ceiling: a fresh lab whose appliance namespace runs, instead of the
// daemon, the same steering program with the same VIPs, services and local
// addresses, one nic.XDP queue opened as the daemon opens it, and a loop
// shaped like dataplane.Worker.Run (batches of 64, 64 empty polls, then
// Wait for up to 100 ms) that rewrites the MACs toward b0 and transmits: no
// parsing, no flow table, no NAT.
//
// Placement: the daemon pins worker 0 to CPU 0 and the reflector pins
// itself there too; the generator's thread is pinned to CPU 1. The kernel's
// work lands on the CPU of the syscall that causes it (veth delivers in the
// sender's softirq): the generator's CPU carries the generator, the bridge
// and the appliance's receive path (steering program, copy into the UMEM),
// the DUT's CPU carries the DUT and, inside its sendto, its transmit path
// through the bridge to the sinks.

const (
	tputWindow     = 2500 * time.Millisecond // measured generation per trial
	tputWarmupMax  = 5 * time.Second         // for neighbour resolution and bridge learning
	tputWarmupStep = 50 * time.Millisecond
	tputTrials     = 3
	tputFlows      = 256 // distinct source ports
	tputBasePort   = 10000
	tputDstPort    = 7  // the default config's udp echo service and backend port
	tputPayload    = 18 // 14+20+8+18 = 60 bytes: a 64-byte frame with its FCS
	tputBatch      = 64 // as dataplane.BatchSize
	tputDUTCPU     = 0  // where the daemon pins worker 0
	tputGenCPU     = 1

	tputUDPOff = 14 + 20 // the UDP header in a frame without VLAN tag or IP options

	xdpActDrop = 1
	xdpActPass = 2
)

// TestThroughputNATvsReflector measures, in one run, the frames per second
// the appliance forwards in nat mode and the frames per second a bare AF_XDP
// reflector forwards on the same path, on three fresh labs each,
// interleaved, and logs a table with the median, min and max of each and
// the ratio of the medians. On a shared machine the rate depends on how
// much CPU the DUT gets, so the table also gives frames per second of the
// DUT's own CPU time (process or thread utime+stime, softirq run inline in
// its syscalls included, work deferred to ksoftirqd not). It needs root and
// CULVERT_TPUT=1 and takes 25 to 40 s:
//
//	CULVERT_TPUT=1 go test -run TestThroughputNATvsReflector -v -count=1 ./cmd/culvert
func TestThroughputNATvsReflector(t *testing.T) {
	if os.Getenv("CULVERT_TPUT") != "1" {
		t.Skip("throughput measurement: set CULVERT_TPUT=1 (root, about 25 s)")
	}
	testenv.RequireRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	genCPU := tputGenCPU
	if runtime.NumCPU() < 2 {
		genCPU = -1 // one CPU: nothing to keep apart
	}
	if load, err := os.ReadFile("/proc/loadavg"); err == nil {
		t.Logf("%d CPUs; /proc/loadavg before: %s", runtime.NumCPU(), strings.TrimSpace(string(load)))
	}
	var results []tputResult
	for i := range tputTrials {
		for _, dut := range []string{"nat", "reflector"} {
			t.Run(fmt.Sprintf("%s-%d", dut, i+1), func(t *testing.T) {
				r := tputTrial(t, dut, exe, genCPU)
				r.trial = i + 1
				results = append(results, r)
			})
		}
	}
	if len(results) != 2*tputTrials {
		t.Fatalf("%d of %d trials finished", len(results), 2*tputTrials)
	}
	t.Log("\n" + tputTable(results))
}

// tputResult is one trial.
type tputResult struct {
	dut       string // "nat" or "reflector"
	trial     int
	window    time.Duration
	generated uint64        // frames the generator transmitted in the window
	forwarded uint64        // frames the sinks counted in the window
	dutCPU    time.Duration // CPU time of the DUT's process (daemon) or thread (reflector) in the window
	genCPU    time.Duration // CPU time of the generator's thread in the window
	cpu       []cpuLoad     // per CPU, over the window
	counters  string        // the DUT's own counters, over its life
}

func (r tputResult) pps() float64 { return float64(r.forwarded) / r.window.Seconds() }

// perDUTCPU is frames forwarded per second of the DUT's CPU time: the rate
// with the time other tenants of the CPU took out (zero if unmeasured).
func (r tputResult) perDUTCPU() float64 {
	if r.dutCPU <= 0 {
		return 0
	}
	return float64(r.forwarded) / r.dutCPU.Seconds()
}

// tputDUT is what a trial needs of the device under test: where its CPU
// time shows, how to stop it, and what it transmitted over its life.
type tputDUT struct {
	want int    // backends that must receive frames before the window
	stat string // /proc stat file of the DUT's process or thread
	stop func() (tx uint64, counters string, err error)
}

// tputTrial brings up a fresh lab with dut on the appliance, warms the path
// up, and measures one window.
func tputTrial(t *testing.T, dut, exe string, genCPU int) tputResult {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var l *lab.Lab
	var d tputDUT
	switch dut {
	case "nat":
		run, err := startLab(ctx, "nat", exe, []string{"CULVERT_TEST_AS_MAIN=1"})
		if err != nil {
			t.Fatal(err)
		}
		defer run.stop()
		l = run.lab
		d = tputDUT{want: len(l.Backends), stat: fmt.Sprintf("/proc/%d/stat", run.daemon.Process.Pid), stop: func() (uint64, string, error) {
			s, err := run.stopDaemon()
			if err != nil {
				return 0, "", err
			}
			p := s.Dataplane
			return p.TX, fmt.Sprintf("steered %d rx %d tx %d drop %d %v", s.Steering.Redirected, p.RX, p.TX, p.Drop, s.DropReasons), nil
		}}
	case "reflector":
		l = lab.UpForTest(t, lab.Options{}) // down in t.Cleanup, after the deferred closes
		ref, err := startTputReflector(l, [6]byte(l.Backends[0].MAC), tputDUTCPU)
		if err != nil {
			t.Fatal(err)
		}
		defer ref.close()
		d = tputDUT{want: 1, stat: fmt.Sprintf("/proc/%d/task/%d/stat", os.Getpid(), ref.tid), stop: func() (uint64, string, error) {
			if err := ref.stop(); err != nil {
				return 0, "", err
			}
			x, xerr := ref.x.Stats()
			st, serr := ref.steer.Stats()
			if err := errors.Join(xerr, serr); err != nil {
				return 0, "", err
			}
			if x.Stray != 0 {
				return 0, "", fmt.Errorf("reflector: %d stray ring entries", x.Stray)
			}
			return ref.reflected, fmt.Sprintf("steered %d rx %d tx %d tx-full %d rx-ring-full %d",
				st.Redirected, x.Received, ref.reflected, ref.dropped, x.Kernel.RxRingFull), nil
		}}
	default:
		t.Fatalf("unknown dut %q", dut)
	}

	sinks, err := newTputSinks(l)
	if err != nil {
		t.Fatal(err)
	}
	defer sinks.close()
	gen, err := newTputGen(l)
	if err != nil {
		t.Fatal(err)
	}
	defer gen.close()
	if err := tputTeachBridge(l); err != nil {
		t.Fatal(err)
	}

	// Warm up until the first d.want backends all receive: the daemon
	// resolves backend MACs once a second.
	deadline := time.Now().Add(tputWarmupMax)
	for {
		if _, _, err := gen.run(tputWarmupStep, genCPU); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
		c, err := sinks.read()
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(c.forwarded[:d.want], 0) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: after %v of warm-up the backends received %v; want frames at the first %d", dut, tputWarmupMax, c.forwarded, d.want)
		}
	}
	time.Sleep(20 * time.Millisecond) // let the warm-up frames drain

	c0, err1 := sinks.read()
	gen0 := gen.sent
	cpu0, err2 := readCPUTimes()
	dut0, err3 := taskCPU(d.stat)
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	window, genTime, err := gen.run(tputWindow, genCPU)
	if err != nil {
		t.Fatal(err)
	}
	cpu1, err2 := readCPUTimes()
	dut1, err3 := taskCPU(d.stat)
	time.Sleep(20 * time.Millisecond) // frames still in the rings were sent in the window
	c1, err1 := sinks.read()
	if err := errors.Join(err1, err2, err3); err != nil {
		t.Fatal(err)
	}
	tx, counters, err := d.stop()
	if err != nil {
		t.Fatal(err)
	}
	r := tputResult{dut: dut, window: window, generated: gen.sent - gen0, forwarded: c1.total() - c0.total(),
		dutCPU: dut1 - dut0, genCPU: genTime, cpu: cpuLoads(cpu0, cpu1), counters: counters}
	flooded := c1.totalFlooded() - c0.totalFlooded()
	t.Logf("%s: %.0f frames/s forwarded, %.0f sent; DUT cpu %v, generator cpu %v in %v; flooded %d; %s",
		dut, r.pps(), float64(r.generated)/window.Seconds(), r.dutCPU, r.genCPU, window.Round(time.Millisecond), flooded, counters)
	switch {
	case r.forwarded == 0:
		t.Fatalf("%s forwarded nothing in %v", dut, window)
	case r.forwarded > r.generated:
		t.Fatalf("%s: the sinks counted %d frames in the window, more than the %d sent", dut, r.forwarded, r.generated)
	case c1.total() > tx:
		t.Fatalf("%s: the sinks counted %d frames, more than the %d it transmitted", dut, c1.total(), tx)
	case flooded > r.forwarded/100:
		t.Fatalf("%s: the bridge flooded %d frames in the window (%d forwarded); the figure would include their cost", dut, flooded, r.forwarded)
	}
	return r
}

// tputTeachBridge has every host on the server segment send a datagram to
// the router, so the bridge learns which port each MAC is on before the
// window (the reflector's lab has had no traffic at all).
func tputTeachBridge(l *lab.Lab) error {
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
	time.Sleep(50 * time.Millisecond) // ARP there and back
	return nil
}

// tputTable formats the trials and the summary.
func tputTable(rs []tputResult) string {
	var b strings.Builder
	fmt.Fprintf(&b, "nat vs reflector: %d-byte UDP frames (%d with FCS), %d flows, %v windows; DUT on CPU %d, generator on CPU %d\n",
		tputUDPOff+8+tputPayload, tputUDPOff+8+tputPayload+4, tputFlows, tputWindow, tputDUTCPU, tputGenCPU)
	fmt.Fprintf(&b, "%-9s %5s %11s %11s %7s %14s %7s  %s\n", "dut", "trial", "forwarded/s", "sent/s", "DUT cpu", "fwd/DUT-cpu-s", "gen cpu", "cpu busy (softirq) in the window")
	pps, eff := map[string][]float64{}, map[string][]float64{}
	starved := false
	for _, r := range rs {
		var cpus []string
		for i, c := range r.cpu {
			cpus = append(cpus, fmt.Sprintf("cpu%d %3.0f%% (%2.0f%%)", i, 100*c.busy, 100*c.softirq))
		}
		mark := ' '
		if r.dutCPU < r.window/2 {
			mark, starved = '*', true
		}
		fmt.Fprintf(&b, "%-9s %5d %11.0f%c%11.0f %6.0f%% %14.0f %6.0f%%  %s\n", r.dut, r.trial, r.pps(), mark, float64(r.generated)/r.window.Seconds(),
			100*r.dutCPU.Seconds()/r.window.Seconds(), r.perDUTCPU(), 100*r.genCPU.Seconds()/r.window.Seconds(), strings.Join(cpus, " "))
		pps[r.dut] = append(pps[r.dut], r.pps())
		eff[r.dut] = append(eff[r.dut], r.perDUTCPU())
	}
	if starved {
		b.WriteString("* the DUT ran less than half the window: short of offered load or of CPU (other tenants), not at its own limit\n")
	}
	for _, m := range []struct {
		what string
		v    map[string][]float64
	}{{"forwarded frames/s", pps}, {"frames per DUT cpu-second", eff}} {
		nat, ref := tputSummarize(m.v["nat"]), tputSummarize(m.v["reflector"])
		fmt.Fprintf(&b, "%s:\n", m.what)
		for _, s := range []struct {
			name string
			s    tputSummary
		}{{"nat", nat}, {"reflector", ref}} {
			fmt.Fprintf(&b, "  %-9s median %8.0f  min %8.0f  max %8.0f\n", s.name, s.s.median, s.s.min, s.s.max)
		}
		if ref.median > 0 {
			fmt.Fprintf(&b, "  nat/reflector (medians) %.2f\n", nat.median/ref.median)
		}
	}
	return b.String()
}

// tputSummary is the median, min and max of a set of rates.
type tputSummary struct{ median, min, max float64 }

// tputSummarize summarizes v (the zero value when v is empty); the median of
// an even count is the mean of the middle two. v is not modified.
func tputSummarize(v []float64) tputSummary {
	if len(v) == 0 {
		return tputSummary{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return tputSummary{median: m, min: s[0], max: s[len(s)-1]}
}

// The generator.

// tputGen transmits frames built once, one per source port, from an AF_XDP
// queue, taking chunks with Alloc and getting them back after completion.
// Its queue is owned by whichever goroutine is in run (or send); sent is
// written there and may be read once run has returned.
type tputGen struct {
	q      nic.Queue
	x      *nic.XDP // q, for Close; nil in tests on a nic.Mem
	frames [][]byte // one per source port
	next   int      // index in frames of the next frame to send
	sent   uint64   // frames Transmit took
	d      [tputBatch]nic.Desc
}

// newTputGen opens the generator on the router's server-segment interface
// of lab l, sending to the appliance's MAC.
func newTputGen(l *lab.Lab) (*tputGen, error) {
	out := l.Router.LinkOn(lab.SegmentServer)
	if out == nil {
		return nil, errors.New("generator: the router has no server-segment link")
	}
	g := &tputGen{frames: tputFrames([6]byte(out.MAC), [6]byte(l.ServerSide.MAC), l.Client.Addr, l.VIP)}
	err := l.Router.Do(func() (err error) {
		g.x, err = nic.OpenXDP(nic.XDPConfig{Iface: out.Name, QueueID: 0})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("generator: %w", err)
	}
	g.q = g.x
	return g, nil
}

// tputFrames returns the generator's frames, one per source port:
// client:10000+i -> vip:7 over UDP, 60 bytes, checksums computed.
func tputFrames(srcMAC, dstMAC [6]byte, client, vip netip.Addr) [][]byte {
	fs := make([][]byte, tputFlows)
	for i := range fs {
		fs[i] = packettest.UDP4(
			packettest.Endpoint{MAC: srcMAC, Addr: netip.AddrPortFrom(client, uint16(tputBasePort+i))},
			packettest.Endpoint{MAC: dstMAC, Addr: netip.AddrPortFrom(vip, tputDstPort)},
			nil, packettest.WithPayloadLen(tputPayload))
	}
	return fs
}

// send transmits one batch, as many frames as Alloc gives, the source
// ports in turn, and returns how many went on the TX ring; it releases the
// ones the ring refused, whose ports come first in the next batch. It
// allocates nothing.
func (g *tputGen) send() int {
	n := g.q.Alloc(g.d[:])
	if n == 0 {
		return 0
	}
	umem := g.q.UMEM()
	k := g.next
	for i := range g.d[:n] {
		f := g.frames[k]
		if k++; k == len(g.frames) {
			k = 0
		}
		copy(umem[g.d[i].Addr:], f)
		g.d[i].Len = uint32(len(f))
	}
	sent := g.q.Transmit(g.d[:n])
	if sent < n {
		g.q.Release(g.d[sent:n])
	}
	g.next = (g.next + sent) % len(g.frames) // refused ports go first next time
	g.sent += uint64(sent)
	return sent
}

// run sends for about d from a thread pinned to cpu (unless cpu < 0) and
// returns how long it sent and the thread's CPU time meanwhile. The thread
// stays locked, so it exits with its goroutine instead of going back to the
// scheduler with the pin.
func (g *tputGen) run(d time.Duration, cpu int) (took, used time.Duration, err error) {
	type result struct {
		took, used time.Duration
		err        error
	}
	done := make(chan result, 1)
	go func() {
		runtime.LockOSThread()
		if cpu >= 0 {
			if err := nic.PinThread(cpu); err != nil {
				done <- result{err: fmt.Errorf("generator: %w", err)}
				return
			}
		}
		cpu0, err := taskCPU("/proc/thread-self/stat")
		start := time.Now()
		for time.Since(start) < d {
			g.send()
		}
		took := time.Since(start)
		cpu1, err2 := taskCPU("/proc/thread-self/stat")
		done <- result{took: took, used: cpu1 - cpu0, err: errors.Join(err, err2)}
	}()
	r := <-done
	return r.took, r.used, r.err
}

func (g *tputGen) close() {
	if g.x != nil {
		g.x.Close()
	}
}

// The sinks.

// tputSinks is one XDP program per backend interface. Each looks at the
// UDP frames to port 7 that come from the appliance's MAC: those to its own
// MAC it counts as forwarded and drops, those to another MAC (flooded by
// the bridge) it counts as flooded and passes; everything else passes.
type tputSinks struct {
	slots *ebpf.Map // per-CPU array: 2i forwarded to backend i, 2i+1 flooded to it
	progs []*ebpf.Program
	links []link.Link
	n     int
}

// tputSinkCounts is a reading of the sinks, per backend.
type tputSinkCounts struct{ forwarded, flooded []uint64 }

func (c tputSinkCounts) total() uint64        { return sumUint64(c.forwarded) }
func (c tputSinkCounts) totalFlooded() uint64 { return sumUint64(c.flooded) }

func sumUint64(v []uint64) uint64 {
	var n uint64
	for _, x := range v {
		n += x
	}
	return n
}

// newTputSinks attaches a sink to every backend of l, in native mode.
func newTputSinks(l *lab.Lab) (*tputSinks, error) {
	s := &tputSinks{n: len(l.Backends)}
	var err error
	s.slots, err = ebpf.NewMap(&ebpf.MapSpec{Name: "tput_sink", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: uint32(2 * s.n)})
	if err != nil {
		return nil, fmt.Errorf("sink counters: %w", err)
	}
	for i, b := range l.Backends {
		prog, err := loadTputSink(s.slots, uint32(2*i), [6]byte(b.MAC), [6]byte(l.ServerSide.MAC))
		if err != nil {
			s.close()
			return nil, err
		}
		s.progs = append(s.progs, prog)
		err = b.Do(func() error {
			lk, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: b.Links[0].Index, Flags: link.XDPDriverMode})
			if err == nil {
				s.links = append(s.links, lk)
			}
			return err
		})
		if err != nil {
			s.close()
			return nil, fmt.Errorf("sink on %s: %w", b.Links[0].Name, err)
		}
	}
	return s, nil
}

// loadTputSink loads the sink of the backend whose MAC is self, counting in
// slots slot (forwarded) and slot+1 (flooded) of the per-CPU array slots.
func loadTputSink(slots *ebpf.Map, slot uint32, self, from [6]byte) (*ebpf.Program, error) {
	prog, err := ebpf.NewProgram(&ebpf.ProgramSpec{
		Name: "tput_sink", Type: ebpf.XDP, License: "Apache-2.0",
		Instructions: tputSinkInstructions(slots.FD(), slot, self, from),
	})
	if err != nil {
		return nil, fmt.Errorf("load sink: %w", err)
	}
	return prog, nil
}

// tputSinkInstructions is the sink: an IPv4 frame without options from MAC
// from, UDP to port 7, is counted in slot and dropped when it is to MAC
// self, else counted in slot+1 and passed. Everything else passes.
func tputSinkInstructions(slotsFD int, slot uint32, self, from [6]byte) asm.Instructions {
	w32 := func(b []byte) int32 { return int32(binary.NativeEndian.Uint32(b)) } // as a 32-bit load reads b
	w16 := func(b []byte) int32 { return int32(binary.NativeEndian.Uint16(b)) }
	be16 := func(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
	return asm.Instructions{
		asm.LoadMem(asm.R2, asm.R1, 0, asm.Word), // data
		asm.LoadMem(asm.R3, asm.R1, 4, asm.Word), // data_end
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, tputUDPOff+4),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 6, asm.Word),
		asm.JNE.Imm32(asm.R5, w32(from[0:4]), "pass"),
		asm.LoadMem(asm.R5, asm.R2, 10, asm.Half),
		asm.JNE.Imm(asm.R5, w16(from[4:6]), "pass"),
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half),
		asm.JNE.Imm(asm.R5, w16(be16(0x0800)), "pass"),
		asm.LoadMem(asm.R5, asm.R2, 14, asm.Byte),
		asm.JNE.Imm(asm.R5, 0x45, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 14+9, asm.Byte),
		asm.JNE.Imm(asm.R5, unix.IPPROTO_UDP, "pass"),
		asm.LoadMem(asm.R5, asm.R2, tputUDPOff+2, asm.Half),
		asm.JNE.Imm(asm.R5, w16(be16(tputDstPort)), "pass"),

		// r7 slot, r8 verdict: forwarded here unless the destination
		// MAC is another's.
		asm.Mov.Imm(asm.R7, int32(slot)),
		asm.Mov.Imm(asm.R8, xdpActDrop),
		asm.LoadMem(asm.R5, asm.R2, 0, asm.Word),
		asm.JNE.Imm32(asm.R5, w32(self[0:4]), "flooded"),
		asm.LoadMem(asm.R5, asm.R2, 4, asm.Half),
		asm.JEq.Imm(asm.R5, w16(self[4:6]), "count"),
		asm.Mov.Imm(asm.R7, int32(slot+1)).WithSymbol("flooded"),
		asm.Mov.Imm(asm.R8, xdpActPass),

		asm.StoreMem(asm.R10, -4, asm.R7, asm.Word).WithSymbol("count"),
		asm.LoadMapPtr(asm.R1, slotsFD),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord), // per-CPU: a plain add
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Reg(asm.R0, asm.R8).WithSymbol("out"),
		asm.Return(),

		asm.Mov.Imm(asm.R0, xdpActPass).WithSymbol("pass"),
		asm.Return(),
	}
}

// read returns the sinks' counts.
func (s *tputSinks) read() (tputSinkCounts, error) {
	c := tputSinkCounts{forwarded: make([]uint64, s.n), flooded: make([]uint64, s.n)}
	for i := range s.n {
		var err1, err2 error
		c.forwarded[i], err1 = sumPerCPU(s.slots, uint32(2*i))
		c.flooded[i], err2 = sumPerCPU(s.slots, uint32(2*i+1))
		if err := errors.Join(err1, err2); err != nil {
			return c, err
		}
	}
	return c, nil
}

func (s *tputSinks) close() {
	for _, lk := range s.links {
		lk.Close()
	}
	for _, p := range s.progs {
		p.Close()
	}
	if s.slots != nil {
		s.slots.Close()
	}
}

// sumPerCPU sums slot key of a per-CPU array of uint64.
func sumPerCPU(m *ebpf.Map, key uint32) (uint64, error) {
	var vals []uint64
	if err := m.Lookup(key, &vals); err != nil {
		return 0, fmt.Errorf("read %v[%d]: %w", m, key, err)
	}
	return sumUint64(vals), nil
}

// The reflector.

// tputReflector is the ceiling's DUT: the steering program and one AF_XDP
// queue on the appliance's interface, and a loop that sends every frame it
// receives back out with the appliance's MAC as source and one backend's as
// destination. The loop goroutine owns the queue and the counters; after
// stop returns, the counters may be read and the queue's Stats too.
type tputReflector struct {
	q        nic.Queue
	x        *nic.XDP // q, for Wait, Stats and Close; nil in tests on a nic.Mem
	steer    *nic.Steering
	src, dst [6]byte // written into every frame: source and destination MAC

	rx, tx, drop [tputBatch]nic.Desc

	reflected, dropped uint64 // frames transmitted; frames the TX ring refused

	tid     int // the loop's thread
	quit    atomic.Bool
	stopped bool // stop has returned
	done    chan error
}

// startTputReflector opens the reflector on l's appliance interface,
// steering what the default configuration steers, and starts its loop on a
// thread in the appliance's namespace pinned to cpu (unless cpu < 0).
func startTputReflector(l *lab.Lab, dst [6]byte, cpu int) (*tputReflector, error) {
	r := &tputReflector{src: [6]byte(l.ServerSide.MAC), dst: dst, done: make(chan error, 1)}
	ready := make(chan error, 1)
	go func() {
		// Locked for good: the thread exits with the goroutine rather
		// than go back to the scheduler in the appliance's namespace,
		// pinned.
		runtime.LockOSThread()
		r.tid = unix.Gettid()
		err := netns.Set(l.Appliance.NS)
		if err == nil {
			err = r.open(l.ServerSide.Name)
		}
		if err == nil && cpu >= 0 {
			err = nic.PinThread(cpu)
		}
		ready <- err
		if err == nil {
			r.done <- r.loop()
		}
	}()
	if err := <-ready; err != nil {
		r.stopped = true // no loop runs
		r.close()
		return nil, fmt.Errorf("reflector: %w", err)
	}
	return r, nil
}

// open sets up the steering program and the queue as appliance.Start does,
// in the calling thread's namespace.
func (r *tputReflector) open(iface string) error {
	var err error
	if r.steer, err = nic.NewSteering(iface, 1); err != nil {
		return err
	}
	if r.x, err = nic.OpenXDP(nic.XDPConfig{Iface: iface, QueueID: 0, ZeroCopy: true}); err != nil {
		return err
	}
	r.q = r.x
	if err := r.steer.SetSocket(0, r.x.FD()); err != nil {
		return err
	}
	spec := appliance.Default("nat")
	var vips, locals [][4]byte
	var svcs []nic.SteerService
	for _, s := range spec.Services {
		if !slices.Contains(vips, s.VIP.As4()) {
			vips = append(vips, s.VIP.As4())
		}
		proto := uint8(unix.IPPROTO_TCP)
		if s.Protocol == "udp" {
			proto = unix.IPPROTO_UDP
		}
		svcs = append(svcs, nic.SteerService{Addr: s.VIP.As4(), Port: s.Port, Proto: proto})
	}
	for _, a := range spec.LocalAddrs {
		locals = append(locals, a.As4())
	}
	return r.steer.Update(vips, svcs, locals)
}

// loop polls until stop, idling as dataplane.Worker.Run does: after 64
// empty polls it sleeps in Wait for up to 100 ms.
func (r *tputReflector) loop() error {
	idle := 0
	for !r.quit.Load() {
		if r.poll() > 0 {
			idle = 0
			continue
		}
		if idle++; idle < 64 {
			continue
		}
		if err := r.x.Wait(100 * time.Millisecond); err != nil {
			return err
		}
	}
	return nil
}

// poll reflects one batch and returns the number of frames received.
// Frames shorter than an Ethernet header, and those the TX ring refuses,
// are released. It allocates nothing.
func (r *tputReflector) poll() int {
	n := r.q.Receive(r.rx[:])
	if n == 0 {
		return 0
	}
	umem := r.q.UMEM()
	ntx, ndrop := 0, 0
	for _, d := range r.rx[:n] {
		if d.Len < 14 {
			r.drop[ndrop] = d
			ndrop++
			continue
		}
		eth := umem[d.Addr : d.Addr+14]
		copy(eth[0:6], r.dst[:])
		copy(eth[6:12], r.src[:])
		r.tx[ntx] = d
		ntx++
	}
	sent := r.q.Transmit(r.tx[:ntx])
	r.reflected += uint64(sent)
	r.dropped += uint64(ntx - sent)
	ndrop += copy(r.drop[ndrop:], r.tx[sent:ntx])
	if ndrop > 0 {
		r.q.Release(r.drop[:ndrop])
	}
	return n
}

// stop ends the loop and returns its error; the queue stays open for Stats.
// It is called once, from the goroutine that started the reflector.
func (r *tputReflector) stop() error {
	r.quit.Store(true)
	select {
	case err := <-r.done:
		r.stopped = true
		return err
	case <-time.After(5 * time.Second):
		return errors.New("reflector: the loop did not stop within 5 s")
	}
}

// close stops the loop if stop has not, and closes the steering program and
// the queue. A loop that does not stop is left running, and the queue open.
func (r *tputReflector) close() {
	if !r.stopped && r.stop() != nil {
		return
	}
	if r.steer != nil {
		r.steer.Close()
	}
	if r.x != nil {
		r.x.Close()
	}
}

// CPU accounting from /proc/stat.

// taskCPU returns the user and system time of the process or thread whose
// stat file path is (/proc/<pid>/stat, /proc/<pid>/task/<tid>/stat). With
// tick-based accounting, softirq work a task's syscalls run inline (the
// veth deliveries behind a sendto) is charged to the task.
func taskCPU(path string) (time.Duration, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, err
	}
	return parseTaskCPU(string(b))
}

// tputClockTick is USER_HZ, the unit of /proc times (100 on every Linux
// ABI Go supports).
const tputClockTick = 10 * time.Millisecond

// parseTaskCPU reads utime and stime, fields 14 and 15 of a stat line,
// counted after the command name, which may hold spaces and parentheses.
func parseTaskCPU(stat string) (time.Duration, error) {
	i := strings.LastIndexByte(stat, ')')
	if i < 0 {
		return 0, fmt.Errorf("stat: no command name in %q", stat)
	}
	fs := strings.Fields(stat[i+1:]) // from field 3, the state
	if len(fs) < 13 {
		return 0, fmt.Errorf("stat: %d fields after the command name", len(fs))
	}
	utime, err1 := strconv.ParseUint(fs[11], 10, 64)
	stime, err2 := strconv.ParseUint(fs[12], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return 0, fmt.Errorf("stat: %w", err)
	}
	return time.Duration(utime+stime) * tputClockTick, nil
}

// cpuTime is one CPU's line of /proc/stat, in clock ticks.
type cpuTime struct{ busy, softirq, total uint64 }

// cpuLoad is the share of a period a CPU spent busy, and in softirq.
type cpuLoad struct{ busy, softirq float64 }

// readCPUTimes reads the per-CPU lines of /proc/stat, indexed by CPU.
func readCPUTimes() ([]cpuTime, error) {
	f, err := os.Open("/proc/stat")
	if err != nil {
		return nil, err
	}
	defer f.Close()
	return parseCPUTimes(bufio.NewScanner(f))
}

// parseCPUTimes reads the "cpuN user nice system idle iowait irq softirq
// steal ..." lines; busy is all but idle and iowait.
func parseCPUTimes(sc *bufio.Scanner) ([]cpuTime, error) {
	var out []cpuTime
	for sc.Scan() {
		fs := strings.Fields(sc.Text())
		if len(fs) == 0 || !strings.HasPrefix(fs[0], "cpu") || fs[0] == "cpu" {
			continue
		}
		cpu, err := strconv.Atoi(fs[0][3:])
		if err != nil || cpu < 0 || cpu >= 1<<16 || len(fs) < 9 {
			return nil, fmt.Errorf("/proc/stat: bad line %q", sc.Text())
		}
		var v [8]uint64
		for i := range v {
			if v[i], err = strconv.ParseUint(fs[1+i], 10, 64); err != nil {
				return nil, fmt.Errorf("/proc/stat: bad line %q", sc.Text())
			}
		}
		for len(out) <= cpu {
			out = append(out, cpuTime{})
		}
		busy := v[0] + v[1] + v[2] + v[5] + v[6] + v[7]
		out[cpu] = cpuTime{busy: busy, softirq: v[6], total: busy + v[3] + v[4]}
	}
	return out, sc.Err()
}

// cpuLoads returns each CPU's load between two readings.
func cpuLoads(a, b []cpuTime) []cpuLoad {
	out := make([]cpuLoad, min(len(a), len(b)))
	for i := range out {
		if b[i].total <= a[i].total {
			continue
		}
		dt := float64(b[i].total - a[i].total)
		out[i] = cpuLoad{busy: float64(b[i].busy-a[i].busy) / dt, softirq: float64(b[i].softirq-a[i].softirq) / dt}
	}
	return out
}

// Tests of the pieces above. The sink test needs root (BPF); the rest runs
// anywhere, on in-memory queues.

var (
	tputRouterMAC    = [6]byte{0x02, 0, 0, 0, 0, 0x01}
	tputApplianceMAC = [6]byte{0x02, 0, 0, 0, 0, 0x02}
	tputBackendMAC   = [6]byte{0x02, 0, 0, 0, 0, 0x11}
	tputOtherMAC     = [6]byte{0x02, 0, 0, 0, 0, 0x12}
	tputClient       = netip.MustParseAddr("198.19.0.2")
	tputVIP          = netip.MustParseAddr("198.18.1.1")
	tputSNAT         = netip.MustParseAddr("198.18.2.1")
	tputBackend      = netip.MustParseAddr("198.18.0.11")
)

// TestTputSinkProgram: the sink counts and drops exactly the UDP frames to
// port 7 that the appliance sends to its backend, and counts (and passes)
// those the bridge floods to it.
func TestTputSinkProgram(t *testing.T) {
	testenv.RequireRoot(t)
	slots, err := ebpf.NewMap(&ebpf.MapSpec{Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: 4})
	if err != nil {
		t.Fatal(err)
	}
	defer slots.Close()
	prog, err := loadTputSink(slots, 2, tputBackendMAC, tputApplianceMAC)
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	udp := func(srcMAC, dstMAC [6]byte, dport uint16, opts ...packettest.Option) []byte {
		return packettest.UDP4(
			packettest.Endpoint{MAC: srcMAC, Addr: netip.AddrPortFrom(tputSNAT, 10000)},
			packettest.Endpoint{MAC: dstMAC, Addr: netip.AddrPortFrom(tputBackend, dport)},
			nil, append(opts, packettest.WithPayloadLen(tputPayload))...)
	}
	nat := udp(tputApplianceMAC, tputBackendMAC, tputDstPort)
	const (
		none = iota
		forwarded
		flooded
	)
	var want [3]uint64
	for _, tc := range []struct {
		name    string
		frame   []byte
		verdict uint32
		counted int
	}{
		{"forwarded by the nat appliance", nat, xdpActDrop, forwarded},
		{"reflected: client to VIP", packettest.UDP4(
			packettest.Endpoint{MAC: tputApplianceMAC, Addr: netip.AddrPortFrom(tputClient, 10000)},
			packettest.Endpoint{MAC: tputBackendMAC, Addr: netip.AddrPortFrom(tputVIP, tputDstPort)},
			nil, packettest.WithPayloadLen(tputPayload)), xdpActDrop, forwarded},
		{"to another backend's MAC", udp(tputApplianceMAC, tputOtherMAC, tputDstPort), xdpActPass, flooded},
		{"differs from ours in the last MAC byte only", udp(tputApplianceMAC, [6]byte{0x02, 0, 0, 0, 0, 0x10}, tputDstPort), xdpActPass, flooded},
		{"differs from ours in the first MAC byte only", udp(tputApplianceMAC, [6]byte{0x06, 0, 0, 0, 0, 0x11}, tputDstPort), xdpActPass, flooded},
		{"from the generator's MAC", udp(tputRouterMAC, tputBackendMAC, tputDstPort), xdpActPass, none},
		{"from a MAC differing in the last byte", udp([6]byte{0x02, 0, 0, 0, 0, 0x03}, tputBackendMAC, tputDstPort), xdpActPass, none},
		{"another port", udp(tputApplianceMAC, tputBackendMAC, 8), xdpActPass, none},
		{"tcp to port 7", packettest.TCP4(
			packettest.Endpoint{MAC: tputApplianceMAC, Addr: netip.AddrPortFrom(tputSNAT, 10000)},
			packettest.Endpoint{MAC: tputBackendMAC, Addr: netip.AddrPortFrom(tputBackend, tputDstPort)},
			packettest.FlagSYN, nil), xdpActPass, none},
		{"ip options", udp(tputApplianceMAC, tputBackendMAC, tputDstPort, packettest.WithIPOptions([]byte{1, 1, 1, 0})), xdpActPass, none},
		{"arp", packettest.ARPRequest(tputApplianceMAC, netip.MustParseAddr("198.18.0.2"), tputBackend), xdpActPass, none},
		{"cut short in the ports", nat[:tputUDPOff+3], xdpActPass, none},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ret, _, err := prog.Test(tc.frame)
			if err != nil {
				t.Fatal(err)
			}
			if ret != tc.verdict {
				t.Errorf("verdict %d, want %d", ret, tc.verdict)
			}
		})
		want[tc.counted]++
	}
	for slot, w := range map[uint32]uint64{0: 0, 1: 0, 2: want[forwarded], 3: want[flooded]} {
		if n, err := sumPerCPU(slots, slot); err != nil || n != w {
			t.Errorf("slot %d counted %d (%v), want %d", slot, n, err, w)
		}
	}
}

// TestTputFrames: the generator's frames are 60 bytes, one per source
// port, client to the VIP's port 7, with valid checksums.
func TestTputFrames(t *testing.T) {
	fs := tputFrames(tputRouterMAC, tputApplianceMAC, tputClient, tputVIP)
	if len(fs) != tputFlows {
		t.Fatalf("%d frames, want %d", len(fs), tputFlows)
	}
	for i, f := range fs {
		if len(f) != 60 {
			t.Errorf("frame %d: %d bytes, want 60", i, len(f))
		}
		packettest.Check(t, f, packettest.EthSrc(tputRouterMAC), packettest.EthDst(tputApplianceMAC),
			packettest.IPv4(packettest.Src(tputClient), packettest.Dst(tputVIP), packettest.ValidChecksums(),
				packettest.UDP(packettest.SrcPort(uint16(tputBasePort+i)), packettest.DstPort(tputDstPort))))
	}
}

// newMemGen is a generator over an in-memory queue.
func newMemGen(t testing.TB) (*tputGen, *nic.Mem) {
	t.Helper()
	m, err := nic.NewMem(512, 2048, 256)
	if err != nil {
		t.Fatal(err)
	}
	return &tputGen{q: m, frames: tputFrames(tputRouterMAC, tputApplianceMAC, tputClient, tputVIP)}, m
}

// TestTputGenSend: each batch sends what Alloc gives, the ports in turn
// across batches; frames the TX ring refuses go back; nothing leaks.
func TestTputGenSend(t *testing.T) {
	frames := tputFrames(tputRouterMAC, tputApplianceMAC, tputClient, tputVIP)
	for _, tc := range []struct {
		name              string
		allocLimit        int
		txLimit           int
		batches, wantEach int
	}{
		{"full batches, ports wrap around", -1, 0, 5, tputBatch},
		{"alloc gives less", 10, 0, 3, 10},
		{"alloc gives none", 0, 0, 2, 0},
		{"tx ring full", -1, 20, 3, 20},
	} {
		t.Run(tc.name, func(t *testing.T) {
			g, m := newMemGen(t)
			m.SetAllocLimit(tc.allocLimit)
			m.SetTXLimit(tc.txLimit)
			free := m.Free()
			var out [][]byte
			for b := range tc.batches {
				if n := g.send(); n != tc.wantEach {
					t.Fatalf("batch %d: sent %d, want %d", b, n, tc.wantEach)
				}
				out = append(out, m.TakeTX()...)
			}
			if len(out) != tc.batches*tc.wantEach || g.sent != uint64(len(out)) {
				t.Fatalf("transmitted %d, counted %d, want %d", len(out), g.sent, tc.batches*tc.wantEach)
			}
			for i, f := range out {
				if want := frames[i%tputFlows]; !slices.Equal(f, want) {
					t.Fatalf("frame %d:\n got %x\nwant %x", i, f, want)
				}
			}
			if m.Free() != free {
				t.Errorf("%d chunks free after, %d before", m.Free(), free)
			}
		})
	}
}

// newMemReflector is a reflector over an in-memory queue.
func newMemReflector(t testing.TB) (*tputReflector, *nic.Mem) {
	t.Helper()
	m, err := nic.NewMem(256, 2048, 256)
	if err != nil {
		t.Fatal(err)
	}
	return &tputReflector{q: m, src: tputApplianceMAC, dst: tputBackendMAC}, m
}

// TestTputReflectorPoll: every frame goes back out with the appliance's
// MAC as source and the backend's as destination and nothing else changed;
// a frame too short for Ethernet, and frames the TX ring refuses, are
// released; no chunk is lost.
func TestTputReflectorPoll(t *testing.T) {
	in := tputFrames(tputRouterMAC, tputApplianceMAC, tputClient, tputVIP)[0]
	for _, tc := range []struct {
		name              string
		frames            [][]byte
		txLimit           int
		wantTX, wantDrops int
	}{
		{"batch", slices.Repeat([][]byte{in}, 5), 0, 5, 0},
		{"full batch", slices.Repeat([][]byte{in}, tputBatch), 0, tputBatch, 0},
		{"short frame", [][]byte{in, in[:13], in}, 0, 2, 0},
		{"tx ring full", slices.Repeat([][]byte{in}, 5), 2, 2, 3},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r, m := newMemReflector(t)
			m.SetTXLimit(tc.txLimit)
			free := m.Free()
			for _, f := range tc.frames {
				if !m.Inject(f) {
					t.Fatal("inject failed")
				}
			}
			if n := r.poll(); n != len(tc.frames) {
				t.Fatalf("poll returned %d, want %d", n, len(tc.frames))
			}
			if r.poll() != 0 {
				t.Fatal("second poll found frames")
			}
			out := m.TakeTX()
			if len(out) != tc.wantTX || r.reflected != uint64(tc.wantTX) || r.dropped != uint64(tc.wantDrops) {
				t.Fatalf("transmitted %d (counted %d), tx-full %d; want %d and %d", len(out), r.reflected, r.dropped, tc.wantTX, tc.wantDrops)
			}
			for _, f := range out {
				packettest.Check(t, f, packettest.EthSrc(tputApplianceMAC), packettest.EthDst(tputBackendMAC))
				if !slices.Equal(f[12:], in[12:]) {
					t.Errorf("bytes after the MACs changed:\n got %x\nwant %x", f[12:], in[12:])
				}
			}
			if m.Free() != free {
				t.Errorf("%d chunks free after, %d before", m.Free(), free)
			}
		})
	}
}

// TestTputNoAllocs: the generator's and the reflector's per-batch work
// allocates nothing.
func TestTputNoAllocs(t *testing.T) {
	g, gm := newMemGen(t)
	if a := testing.AllocsPerRun(100, func() { g.send(); gm.DiscardTX() }); a != 0 {
		t.Errorf("generator: %v allocations per batch, want 0", a)
	}
	r, rm := newMemReflector(t)
	frame := g.frames[0]
	if a := testing.AllocsPerRun(100, func() {
		for range tputBatch {
			rm.Inject(frame)
		}
		r.poll()
		rm.DiscardTX()
	}); a != 0 {
		t.Errorf("reflector: %v allocations per batch, want 0", a)
	}
}

// BenchmarkTputBatch is the user-space cost per frame of the generator and
// of the reflector on an in-memory queue (the reflector's figure includes
// Inject's copy of the frame, which the kernel does on a real queue).
func BenchmarkTputBatch(b *testing.B) {
	b.Run("generator", func(b *testing.B) {
		g, m := newMemGen(b)
		b.ReportAllocs()
		for b.Loop() {
			g.send()
			m.DiscardTX()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tputBatch), "ns/frame")
	})
	b.Run("reflector", func(b *testing.B) {
		r, m := newMemReflector(b)
		frame := tputFrames(tputRouterMAC, tputApplianceMAC, tputClient, tputVIP)[0]
		b.ReportAllocs()
		for b.Loop() {
			for range tputBatch {
				m.Inject(frame)
			}
			r.poll()
			m.DiscardTX()
		}
		b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*tputBatch), "ns/frame")
	})
}

// TestTputTable: the summary lines hold the medians and their ratios, for
// the rate and for the rate per DUT CPU-second, and trials whose DUT ran
// less than half the window are marked.
func TestTputTable(t *testing.T) {
	w := 2 * time.Second
	rs := []tputResult{
		{dut: "nat", trial: 1, window: w, forwarded: 200_000, generated: 900_000, dutCPU: 2 * time.Second},
		{dut: "reflector", trial: 1, window: w, forwarded: 400_000, generated: 900_000, dutCPU: 800 * time.Millisecond},
	}
	out := tputTable(rs)
	for _, want := range []string{
		"nat       median   100000", "reflector median   200000", "nat/reflector (medians) 0.50", // frames/s
		"nat       median   100000", "reflector median   500000", "nat/reflector (medians) 0.20", // per DUT cpu-second
		"200000* ", "* the DUT ran less than half the window",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("table lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "100000*") {
		t.Errorf("the nat trial, busy the whole window, is marked:\n%s", out)
	}
}

func TestTputSummarize(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   []float64
		want tputSummary
	}{
		{"empty", nil, tputSummary{}},
		{"one", []float64{5}, tputSummary{5, 5, 5}},
		{"odd, unsorted", []float64{300, 100, 200}, tputSummary{200, 100, 300}},
		{"even: mean of the middle two", []float64{4, 1, 3, 2}, tputSummary{2.5, 1, 4}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			before := slices.Clone(tc.in)
			if got := tputSummarize(tc.in); got != tc.want {
				t.Errorf("got %+v, want %+v", got, tc.want)
			}
			if !slices.Equal(tc.in, before) {
				t.Errorf("input changed to %v", tc.in)
			}
		})
	}
}

func TestParseTaskCPU(t *testing.T) {
	for _, tc := range []struct {
		name, stat string
		want       time.Duration
		ok         bool
	}{
		{"plain", "123 (culvert) R 1 123 123 0 -1 4194304 100 0 0 0 250 37 0 0 20 0 4 0 100", 2870 * time.Millisecond, true},
		{"odd command name", "7 (a) b (c)) S 1 7 7 0 -1 0 0 0 0 0 1 2 0 0 20 0 1 0 5", 30 * time.Millisecond, true},
		{"no name", "123 culvert R 1", 0, false},
		{"short", "123 (x) R 1 2 3", 0, false},
		{"not a number", "1 (x) R 1 1 1 0 -1 0 0 0 0 0 u 2 0", 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := parseTaskCPU(tc.stat)
			if (err == nil) != tc.ok || got != tc.want {
				t.Errorf("got %v, %v; want %v, ok %v", got, err, tc.want, tc.ok)
			}
		})
	}
	if d, err := taskCPU("/proc/thread-self/stat"); err != nil || d < 0 {
		t.Errorf("this thread: %v, %v", d, err)
	}
}

func TestParseCPUTimes(t *testing.T) {
	const stat = `cpu  10 1 10 100 2 1 5 1 0 0
cpu0 4 0 6 50 2 1 3 0 0 0
cpu1 6 1 4 50 0 0 2 1 0 0
intr 12345
ctxt 678
`
	got, err := parseCPUTimes(bufio.NewScanner(strings.NewReader(stat)))
	if err != nil {
		t.Fatal(err)
	}
	want := []cpuTime{{busy: 14, softirq: 3, total: 66}, {busy: 14, softirq: 2, total: 64}}
	if !slices.Equal(got, want) {
		t.Fatalf("got %+v, want %+v", got, want)
	}
	later := []cpuTime{{busy: 64, softirq: 28, total: 166}, {busy: 14, softirq: 2, total: 64}}
	if loads := cpuLoads(got, later); !slices.Equal(loads, []cpuLoad{{busy: 0.5, softirq: 0.25}, {}}) {
		t.Errorf("loads %+v", loads)
	}
	for _, bad := range []string{"cpu0 1 2 x 4 5 6 7 8\n", "cpu0 1 2 3\n", "cpuX 1 2 3 4 5 6 7 8\n"} {
		if _, err := parseCPUTimes(bufio.NewScanner(strings.NewReader(bad))); err == nil {
			t.Errorf("%q parsed", bad)
		}
	}
}
