package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/culvert-lb/culvert/bench/lab"
	"github.com/culvert-lb/culvert/internal/syncbuf"
)

// Defaults of TrafgenConfig: the frame of the tput harness and of
// bench/pktgen, a 60-byte UDP frame (64 on the wire with the FCS) from 256
// source ports.
const (
	DefaultTrafgenBasePort = 10000
	DefaultTrafgenFlows    = 256
	DefaultTrafgenPayload  = 18 // 14 + 20 + 8 + 18 = 60 bytes
)

// trafgenStopWait bounds how long RunTrafgen waits for trafgen to exit
// after SIGINT before it kills it.
const trafgenStopWait = 5 * time.Second

// TrafgenConfig describes one trafgen run: netsniff-ng's trafgen sending
// one UDP frame template from an interface through a PF_PACKET TX ring,
// the source port counted up over Flows values with a dinc() field (trafgen
// recomputes the UDP checksum of a changed field). The zero value is not
// valid: Iface, the MACs, the addresses, DstPort and Count or Duration are
// required.
type TrafgenConfig struct {
	Iface          string // in the host's namespace
	SrcMAC, DstMAC net.HardwareAddr
	Src, Dst       netip.Addr
	DstPort        uint16
	// BasePort and Flows: source ports BasePort to BasePort+Flows-1, in
	// turn; 0 means DefaultTrafgenBasePort and DefaultTrafgenFlows.
	BasePort uint16
	Flows    int
	// Payload is the UDP payload in bytes; 0 means DefaultTrafgenPayload.
	Payload int
	// CPU is the CPU trafgen's one sending process runs on. trafgen pins
	// its worker i to CPU i itself, whatever taskset says, so the frame is
	// given to worker CPU only (a cpu(CPU): prefix in the configuration)
	// and trafgen starts CPU+1 workers, of which the others have nothing to
	// send and exit. AnyCPU runs one worker, which trafgen puts on CPU 0.
	CPU int
	// Count is the number of frames to send (-n); Duration bounds the run
	// (SIGINT then). At least one is needed.
	Count    uint64
	Duration time.Duration
	// Binary is the trafgen executable; empty: "trafgen" from PATH.
	Binary string
}

// TrafgenResult is what trafgen reported on exit, and the wall time of the
// run (from start to exit, its own setup included).
type TrafgenResult struct {
	Packets, Bytes uint64        // "N packets outgoing", "N bytes outgoing"
	CPUTime        time.Duration // the workers' "S sec, U usec on CPUi", summed
	Wall           time.Duration
	Output         string
}

// PPS returns frames per second over the wall time.
func (r TrafgenResult) PPS() float64 {
	if r.Wall <= 0 {
		return 0
	}
	return float64(r.Packets) / r.Wall.Seconds()
}

// withDefaults fills the zero fields of c.
func (c TrafgenConfig) withDefaults() TrafgenConfig {
	if c.BasePort == 0 {
		c.BasePort = DefaultTrafgenBasePort
	}
	if c.Flows == 0 {
		c.Flows = DefaultTrafgenFlows
	}
	if c.Payload == 0 {
		c.Payload = DefaultTrafgenPayload
	}
	return c
}

// workers returns trafgen's --cpus for c.
func (c TrafgenConfig) workers() int {
	if c.CPU == AnyCPU {
		return 1
	}
	return c.CPU + 1
}

// Conf returns trafgen's packet configuration for c (defaults filled in).
func (c TrafgenConfig) Conf() (string, error) {
	c = c.withDefaults()
	var errs []error
	src, err1 := mac6("trafgen SrcMAC", c.SrcMAC)
	dst, err2 := mac6("trafgen DstMAC", c.DstMAC)
	errs = append(errs, err1, err2)
	if !c.Src.Is4() || !c.Dst.Is4() {
		errs = append(errs, fmt.Errorf("trafgen: addresses %v -> %v: want IPv4", c.Src, c.Dst))
	}
	if c.DstPort == 0 {
		errs = append(errs, errors.New("trafgen: destination port 0"))
	}
	if c.Flows < 1 || int(c.BasePort)+c.Flows-1 > 65535 {
		errs = append(errs, fmt.Errorf("trafgen: %d flows from port %d do not fit", c.Flows, c.BasePort))
	}
	if c.Payload < 0 || c.Payload > 1472 {
		errs = append(errs, fmt.Errorf("trafgen: payload %d: want 0 to 1472", c.Payload))
	}
	if c.CPU < AnyCPU {
		errs = append(errs, fmt.Errorf("trafgen: cpu %d", c.CPU))
	}
	if err := errors.Join(errs...); err != nil {
		return "", err
	}
	sport := strconv.Itoa(int(c.BasePort))
	if c.Flows > 1 {
		sport = fmt.Sprintf("dinc(%d, %d, 1)", c.BasePort, int(c.BasePort)+c.Flows-1)
	}
	hw := func(m [6]byte) string { return net.HardwareAddr(m[:]).String() }
	var b strings.Builder
	fmt.Fprintf(&b, "/* culvert bench peer: %d-byte UDP frames, %d flows */\n", 14+20+8+c.Payload, c.Flows)
	if c.CPU != AnyCPU {
		fmt.Fprintf(&b, "cpu(%d): ", c.CPU)
	}
	b.WriteString("{\n")
	fmt.Fprintf(&b, "\teth(da=%s, sa=%s),\n", hw(dst), hw(src))
	fmt.Fprintf(&b, "\tipv4(saddr=%v, daddr=%v, ttl=64),\n", c.Src, c.Dst)
	fmt.Fprintf(&b, "\tudp(sp=%s, dp=%d),\n", sport, c.DstPort)
	fmt.Fprintf(&b, "\tfill(0x00, %d)\n", c.Payload)
	b.WriteString("}\n")
	return b.String(), nil
}

// RunTrafgen runs trafgen in h's namespace until it has sent cfg.Count
// frames, cfg.Duration has passed, or ctx ends (both by SIGINT to its
// process group, on which trafgen prints its counts), and returns what it
// printed. A missing
// trafgen binary is reported as an error wrapping exec.ErrNotFound.
func RunTrafgen(ctx context.Context, h *lab.Host, cfg TrafgenConfig) (TrafgenResult, error) {
	cfg = cfg.withDefaults()
	conf, err := cfg.Conf()
	if err != nil {
		return TrafgenResult{}, err
	}
	if cfg.Iface == "" {
		return TrafgenResult{}, errors.New("trafgen: no interface")
	}
	if cfg.Count == 0 && cfg.Duration <= 0 {
		return TrafgenResult{}, errors.New("trafgen: neither Count nor Duration: it would run for ever")
	}
	bin := cfg.Binary
	if bin == "" {
		bin = "trafgen"
	}
	if bin, err = exec.LookPath(bin); err != nil {
		return TrafgenResult{}, fmt.Errorf("trafgen: %w (Debian: apt-get install netsniff-ng)", err)
	}
	// trafgen 0.6.8 reads nothing from "--conf -": the configuration goes
	// in a file.
	f, err := os.CreateTemp("", "culvert-trafgen-*.cfg")
	if err != nil {
		return TrafgenResult{}, fmt.Errorf("trafgen: %w", err)
	}
	defer os.Remove(f.Name())
	_, err1 := f.WriteString(conf)
	if err := errors.Join(err1, f.Close()); err != nil {
		return TrafgenResult{}, fmt.Errorf("trafgen: %w", err)
	}
	args := []string{"--dev", cfg.Iface, "--conf", f.Name(), "--cpus", strconv.Itoa(cfg.workers()),
		"--no-sock-mem", "--notouch-irq"}
	if cfg.Count > 0 {
		args = append(args, "--num", strconv.FormatUint(cfg.Count, 10))
	}
	cmd := h.Command(bin, args...)
	var out syncbuf.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	// trafgen's workers are processes of its own that SIGINT to the parent
	// alone does not stop (a terminal signals the whole group): it runs in
	// a process group of its own, which is signalled as a whole.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.WaitDelay = trafgenStopWait
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return TrafgenResult{}, fmt.Errorf("trafgen: start: %w", err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	var stop <-chan time.Time
	if cfg.Duration > 0 {
		t := time.NewTimer(cfg.Duration)
		defer t.Stop()
		stop = t.C
	}
	var waitErr error
	interrupted := false
	select {
	case waitErr = <-done:
	case <-stop:
		interrupted = true
	case <-ctx.Done():
		interrupted = true
	}
	if interrupted {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGINT)
		select {
		case waitErr = <-done:
		case <-time.After(trafgenStopWait):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
			return TrafgenResult{}, fmt.Errorf("trafgen did not exit within %v of SIGINT: %s", trafgenStopWait, tail(out.Bytes(), 800))
		}
		waitErr = exitBySignal(waitErr, syscall.SIGINT)
	}
	wall := time.Since(start)
	text := string(out.Bytes())
	if waitErr != nil {
		return TrafgenResult{Output: text, Wall: wall}, fmt.Errorf("trafgen: %w: %s", waitErr, tail(out.Bytes(), 800))
	}
	r, err := ParseTrafgenOutput(text)
	r.Wall = wall
	if err != nil {
		return r, err
	}
	return r, ctx.Err()
}

var (
	trafgenPackets = regexp.MustCompile(`(?m)^\s*(\d+) packets outgoing\s*$`)
	trafgenBytes   = regexp.MustCompile(`(?m)^\s*(\d+) bytes outgoing\s*$`)
	trafgenCPU     = regexp.MustCompile(`(?m)^\s*(\d+) sec, (\d+) usec on CPU\d+ \((\d+) packets\)\s*$`)
)

// ParseTrafgenOutput reads the counts trafgen prints on exit:
//
//	  647680 packets outgoing
//	38860800 bytes outgoing
//	       0 sec, 827914 usec on CPU0 (647680 packets)
//
// (one line per worker). Wall is left zero.
func ParseTrafgenOutput(out string) (TrafgenResult, error) {
	r := TrafgenResult{Output: out}
	p := trafgenPackets.FindStringSubmatch(out)
	b := trafgenBytes.FindStringSubmatch(out)
	if p == nil || b == nil {
		return r, fmt.Errorf("trafgen: no packet or byte count in its output: %s", tail([]byte(out), 800))
	}
	var err1, err2 error
	r.Packets, err1 = strconv.ParseUint(p[1], 10, 64)
	r.Bytes, err2 = strconv.ParseUint(b[1], 10, 64)
	if err := errors.Join(err1, err2); err != nil {
		return r, fmt.Errorf("trafgen: %w", err)
	}
	var perWorker uint64
	for _, m := range trafgenCPU.FindAllStringSubmatch(out, -1) {
		s, err1 := strconv.ParseUint(m[1], 10, 32)
		us, err2 := strconv.ParseUint(m[2], 10, 32)
		n, err3 := strconv.ParseUint(m[3], 10, 64)
		if err := errors.Join(err1, err2, err3); err != nil {
			return r, fmt.Errorf("trafgen: %w", err)
		}
		r.CPUTime += time.Duration(s)*time.Second + time.Duration(us)*time.Microsecond
		perWorker += n
	}
	if perWorker != r.Packets {
		return r, fmt.Errorf("trafgen: the workers' lines add up to %d packets, the total says %d", perWorker, r.Packets)
	}
	return r, nil
}

// exitBySignal returns nil if err is a clean exit or death by sig (or the
// shell convention 128+sig), else err.
func exitBySignal(err error, sig syscall.Signal) error {
	var ee *exec.ExitError
	if err == nil {
		return nil
	}
	if errors.As(err, &ee) {
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() && ws.Signal() == sig {
			return nil
		}
		if ee.ExitCode() == 128+int(sig) {
			return nil
		}
	}
	return err
}
