package peer

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/culvert-lb/culvert/bench/lab"
	"github.com/culvert-lb/culvert/internal/packettest"
)

// Privileged tests: each brings up a lab (lab.UpForTest skips when not
// root and fails when CULVERT_TEST_PRIVILEGED=require) and shows a peer
// forwarding real traffic from the client to the backends' servers.

// requireBinary skips t when an external program is missing, or fails it
// when CULVERT_TEST_PRIVILEGED=require.
func requireBinary(t *testing.T, name, pkg string) {
	t.Helper()
	if _, err := exec.LookPath(name); err != nil {
		msg := fmt.Sprintf("%s not installed (Debian: apt-get install %s): %v", name, pkg, err)
		if os.Getenv("CULVERT_TEST_PRIVILEGED") == "require" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
}

// echoFrom sends one UDP datagram from the client, from source port sport,
// to the VIP's echo port, and returns the answering backend's role (the
// echo servers answer "<role>: <payload>"); the answer must come from the
// VIP. It tries three times, 300 ms each.
func echoFrom(t *testing.T, l *lab.Lab, sport uint16) string {
	t.Helper()
	pc, err := l.Client.ListenPacket("udp4", netip.AddrPortFrom(l.Client.Addr, sport).String())
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	vip := net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.VIP, l.Options().UDPPort))
	buf := make([]byte, 256)
	payload := fmt.Sprintf("hello %d", sport)
	for range 3 {
		if _, err := pc.WriteTo([]byte(payload), vip); err != nil {
			t.Fatal(err)
		}
		pc.SetReadDeadline(time.Now().Add(300 * time.Millisecond))
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			continue
		}
		role, rest, ok := strings.Cut(string(buf[:n]), ": ")
		if !ok || rest != payload || from.(*net.UDPAddr).AddrPort().Addr() != l.VIP {
			t.Fatalf("answer %q from %v, want \"<role>: %s\" from %v", buf[:n], from, payload, l.VIP)
		}
		return role
	}
	t.Fatalf("no echo answer through the VIP from port %d", sport)
	return ""
}

// echoRoles sends from n source ports starting at base and returns the
// answering roles, in order.
func echoRoles(t *testing.T, l *lab.Lab, base uint16, n int) []string {
	t.Helper()
	roles := make([]string, n)
	for i := range roles {
		roles[i] = echoFrom(t, l, base+uint16(i))
	}
	return roles
}

// httpGet fetches http://VIP/ from the client n times and returns the
// answering backends' roles.
func httpGet(t *testing.T, l *lab.Lab, n int) []string {
	t.Helper()
	c := l.Client.HTTPClient(nil)
	c.Timeout = 3 * time.Second
	var roles []string
	for range n {
		resp, err := c.Get(fmt.Sprintf("http://%v:%d/", l.VIP, l.Options().HTTPPort))
		if err != nil {
			t.Fatalf("GET through the VIP: %v", err)
		}
		body, err := io.ReadAll(resp.Body)
		resp.Body.Close()
		if err != nil || resp.StatusCode != 200 || !strings.HasPrefix(string(body), "backend ") {
			t.Fatalf("GET through the VIP: %d %q %v", resp.StatusCode, body, err)
		}
		roles = append(roles, strings.TrimSpace(strings.TrimPrefix(string(body), "backend ")))
	}
	return roles
}

// distinct returns the distinct values of v, sorted.
func distinct(v []string) []string {
	s := slices.Clone(v)
	slices.Sort(s)
	return slices.Compact(s)
}

func TestNFTablesBalances(t *testing.T) {
	requireBinary(t, "nft", "nftables")
	for _, tc := range []struct {
		topo   lab.Topology
		spread Spread
	}{
		{lab.OneArmed, SpreadHash},
		{lab.OneArmed, SpreadRoundRobin},
		{lab.TwoArmed, SpreadHash},
	} {
		t.Run(fmt.Sprintf("%v/%v", tc.topo, tc.spread), func(t *testing.T) {
			l := lab.UpForTest(t, lab.Options{Topology: tc.topo})
			fwd, err := l.Appliance.Sysctl("net.ipv4.ip_forward")
			if err != nil {
				t.Fatal(err)
			}
			n, err := StartNFTables(l, NFTablesConfig{Spread: tc.spread})
			if err != nil {
				t.Fatal(err)
			}
			defer n.Close()
			t.Logf("notes: %s", strings.Join(n.Notes(), "; "))
			udp := echoRoles(t, l, 20000, 12)
			if len(distinct(udp)) < 2 {
				t.Errorf("UDP answers all from %v; want more than one backend", distinct(udp))
			}
			tcp := httpGet(t, l, 9)
			if len(distinct(tcp)) < 2 {
				t.Errorf("HTTP answers all from %v; want more than one backend", distinct(tcp))
			}
			if tc.spread == SpreadRoundRobin && len(distinct(tcp)) != len(l.Backends) {
				t.Errorf("round robin over 9 connections reached %v, want all %d backends", distinct(tcp), len(l.Backends))
			}
			t.Logf("udp %v, http %v", udp, tcp)

			if err := n.Close(); err != nil {
				t.Fatal(err)
			}
			if v, err := l.Appliance.Sysctl("net.ipv4.ip_forward"); err != nil || v != fwd {
				t.Errorf("after Close ip_forward is %q (%v), was %q", v, err, fwd)
			}
			out, err := l.Appliance.Command("nft", "list", "tables").CombinedOutput()
			if err != nil || strings.Contains(string(out), NFTablesTable) {
				t.Errorf("after Close: nft list tables: %q %v", out, err)
			}
		})
	}
}

// TestNFTablesRefusesXDP: with an XDP program on the appliance's interface
// the kernel would never see the VIP's frames.
func TestNFTablesRefusesXDP(t *testing.T) {
	requireBinary(t, "nft", "nftables")
	l := lab.UpForTest(t, lab.Options{DSR: true, Backends: 1})
	f, err := StartXDPForwarder(l, XDPForwarderConfig{})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if n, err := StartNFTables(l, NFTablesConfig{}); err == nil {
		n.Close()
		t.Fatal("nftables started with an XDP program on the appliance")
	} else {
		t.Log(err)
	}
}

func TestHAProxyBalances(t *testing.T) {
	requireBinary(t, "haproxy", "haproxy")
	l := lab.UpForTest(t, lab.Options{})
	cpu := runtime.NumCPU() - 1
	h, err := StartHAProxy(l, HAProxyConfig{CPU: cpu})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	var set unix.CPUSet
	if err := unix.SchedGetaffinity(h.Pid(), &set); err != nil || set.Count() != 1 || !set.IsSet(cpu) {
		t.Errorf("haproxy's affinity: %d CPUs, cpu %d set %v (%v); want only cpu %d", set.Count(), cpu, set.IsSet(cpu), err, cpu)
	}
	if pid, err := os.ReadFile(h.Dir() + "/haproxy.pid"); err != nil || strings.TrimSpace(string(pid)) != fmt.Sprint(h.Pid()) {
		t.Errorf("pid file %q (%v), want %d", pid, err, h.Pid())
	}
	roles := httpGet(t, l, 6)
	if len(distinct(roles)) < 2 {
		t.Errorf("HTTP through haproxy answered only by %v; want several backends", distinct(roles))
	}
	t.Logf("http %v", roles)

	dir, pid := h.Dir(), h.Pid()
	if err := h.Stop(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !os.IsNotExist(err) {
		t.Errorf("temp dir %s still there: %v", dir, err)
	}
	if err := unix.Kill(pid, 0); err == nil {
		t.Errorf("haproxy %d still running after Stop", pid)
	}
	var onLo bool
	l.Appliance.Do(func() error {
		ifc, err := net.InterfaceByName("lo")
		if err != nil {
			return err
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			onLo = onLo || strings.HasPrefix(a.String(), l.VIP.String()+"/")
		}
		return nil
	})
	if onLo {
		t.Error("the VIP is still on the appliance's loopback after Stop")
	}
}

func TestXDPForwarderForwards(t *testing.T) {
	for _, topo := range []lab.Topology{lab.OneArmed, lab.TwoArmed} {
		t.Run(topo.String(), func(t *testing.T) {
			l := lab.UpForTest(t, lab.Options{Topology: topo, DSR: true})
			f, err := StartXDPForwarder(l, XDPForwarderConfig{})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			const base, n = 30000, 9
			roles := echoRoles(t, l, base, n)
			for i, r := range roles {
				if want := l.Backends[(base+i)%len(l.Backends)].Role; r != want {
					t.Errorf("source port %d answered by %s, want %s (port mod %d)", base+i, r, want, len(l.Backends))
				}
			}
			st, err := f.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.Forwarded < n {
				t.Errorf("forwarded %d frames, want at least %d", st.Forwarded, n)
			}
			if tcp := httpGet(t, l, 3); len(tcp) != 3 {
				t.Errorf("http %v", tcp)
			}
			t.Logf("mode %v, %+v, udp %v", f.Mode(), st, roles)
		})
	}
}

func TestReflectorForwards(t *testing.T) {
	for _, tc := range []struct {
		name   string
		topo   lab.Topology
		queues int
	}{
		{"one-armed", lab.OneArmed, 1},
		{"two-armed", lab.TwoArmed, 1},
		{"one-armed, two queues", lab.OneArmed, 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := lab.UpForTest(t, lab.Options{Topology: tc.topo, DSR: true, ApplianceQueues: tc.queues})
			cpu := runtime.NumCPU() - 1
			r, err := StartReflector(l, ReflectorConfig{CPU: cpu})
			if err != nil {
				t.Fatal(err)
			}
			defer r.Stop()
			if len(r.Threads()) != tc.queues {
				t.Errorf("%d loops, want one per queue (%d)", len(r.Threads()), tc.queues)
			}
			for q, tid := range r.Threads() {
				want := (cpu + q) % runtime.NumCPU()
				var set unix.CPUSet
				if err := unix.SchedGetaffinity(tid, &set); err != nil || set.Count() != 1 || !set.IsSet(want) {
					t.Errorf("loop %d thread %d: %d CPUs, cpu %d set %v (%v)", q, tid, set.Count(), want, set.IsSet(want), err)
				}
			}
			roles := echoRoles(t, l, 31000, 4*tc.queues)
			if d := distinct(roles); len(d) != 1 || d[0] != l.Backends[0].Role {
				t.Errorf("UDP answered by %v, want only %s (ToServer defaults to the first backend)", d, l.Backends[0].Role)
			}
			if d := distinct(httpGet(t, l, 3)); len(d) != 1 || d[0] != l.Backends[0].Role {
				t.Errorf("HTTP answered by %v, want only %s", d, l.Backends[0].Role)
			}
			st, err := r.Stats()
			if err != nil {
				t.Fatal(err)
			}
			if st.Forwarded < uint64(4*tc.queues) || st.Steered < st.Received || st.Received < st.Forwarded {
				t.Errorf("stats %+v: want at least %d forwarded, steered >= received >= forwarded", st, 4*tc.queues)
			}
			t.Logf("%+v", st)
			if err := r.Stop(); err != nil {
				t.Fatal(err)
			}
			if err := r.Stop(); err != nil {
				t.Errorf("second Stop: %v", err)
			}
			a, err1 := r.Stats()
			b, err2 := r.Stats()
			if err1 != nil || err2 != nil || a != b || a.Forwarded < st.Forwarded || a.Steered < st.Steered {
				t.Errorf("Stats after Stop: %+v (%v), then %+v (%v); want them equal, and no less than %+v", a, err1, b, err2, st)
			}
			// The steering program is gone: the kernel, which does not
			// forward, sees the VIP's frames again and nobody answers.
			pc, err := l.Client.ListenPacket("udp4", netip.AddrPortFrom(l.Client.Addr, 31999).String())
			if err != nil {
				t.Fatal(err)
			}
			defer pc.Close()
			pc.WriteTo([]byte("x"), net.UDPAddrFromAddrPort(netip.AddrPortFrom(l.VIP, l.Options().UDPPort)))
			pc.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			if n, _, err := pc.ReadFrom(make([]byte, 64)); err == nil {
				t.Errorf("an answer (%d bytes) after Stop", n)
			}
		})
	}
}

// capture is an AF_PACKET socket on one interface of a lab host that
// keeps the frames it receives.
type capture struct {
	fd     int
	quit   atomic.Bool
	mu     sync.Mutex
	frames [][]byte
	done   chan struct{}
}

// startCapture opens the capture on ifname in h's namespace.
func startCapture(t *testing.T, h *lab.Host, ifname string) *capture {
	t.Helper()
	c := &capture{fd: -1, done: make(chan struct{})}
	err := h.Do(func() error {
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_RAW|unix.SOCK_CLOEXEC, int(htons(unix.ETH_P_ALL)))
		if err != nil {
			return err
		}
		c.fd = fd
		idx, err := ifindex(ifname)
		if err != nil {
			return err
		}
		unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 8<<20)
		unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Usec: 50000})
		return unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: htons(unix.ETH_P_ALL), Ifindex: idx})
	})
	if err != nil {
		if c.fd >= 0 {
			unix.Close(c.fd)
		}
		t.Fatal(err)
	}
	go func() {
		defer close(c.done)
		buf := make([]byte, 2048)
		for {
			n, _, err := unix.Recvfrom(c.fd, buf, 0)
			switch {
			case c.quit.Load():
				return
			case err == unix.EAGAIN || err == unix.EINTR:
				continue
			case err != nil:
				return
			}
			c.mu.Lock()
			c.frames = append(c.frames, slices.Clone(buf[:n]))
			c.mu.Unlock()
		}
	}()
	t.Cleanup(c.stop)
	return c
}

// stop closes the socket and waits for the reader.
func (c *capture) stop() {
	if c.fd >= 0 {
		c.quit.Store(true)
		<-c.done
		unix.Close(c.fd)
		c.fd = -1
	}
}

func (c *capture) taken() [][]byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	return slices.Clone(c.frames)
}

func htons(v uint16) uint16 { return binary.BigEndian.Uint16(binary.NativeEndian.AppendUint16(nil, v)) }

// TestTrafgenSends: trafgen, on the router's server-side interface, sends
// the configured frames to the appliance: the count asked, one per source
// port in turn, valid checksums, from the one worker on the CPU asked.
func TestTrafgenSends(t *testing.T) {
	requireBinary(t, "trafgen", "netsniff-ng")
	l := lab.UpForTest(t, lab.Options{Backends: 1, NoServers: true})
	out := l.Router.LinkOn(lab.SegmentServer)
	cfg := TrafgenConfig{
		Iface: out.Name, SrcMAC: out.MAC, DstMAC: l.ServerSide.MAC,
		Src: l.Client.Addr, Dst: l.VIP, DstPort: 7, Flows: 16, CPU: runtime.NumCPU() - 1,
	}
	t.Run("count", func(t *testing.T) {
		c := startCapture(t, l.Appliance, l.ServerSide.Name)
		cfg := cfg
		cfg.Count = 1000
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		r, err := RunTrafgen(ctx, l.Router, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if r.Packets != 1000 || r.Bytes != 60_000 {
			t.Errorf("trafgen reports %d packets, %d bytes; want 1000, 60000", r.Packets, r.Bytes)
		}
		if want := fmt.Sprintf("on CPU%d (1000 packets)", cfg.CPU); !strings.Contains(r.Output, want) {
			t.Errorf("output lacks %q:\n%s", want, r.Output)
		}
		time.Sleep(100 * time.Millisecond)
		c.stop()
		ports := map[uint16]int{}
		for _, f := range c.taken() {
			if len(f) != 60 || [6]byte(f[6:12]) != [6]byte(out.MAC) || binary.BigEndian.Uint16(f[12:]) != 0x0800 {
				continue
			}
			packettest.Check(t, f, packettest.EthDst([6]byte(l.ServerSide.MAC)),
				packettest.IPv4(packettest.Src(l.Client.Addr), packettest.Dst(l.VIP), packettest.ValidChecksums(),
					packettest.UDP(packettest.DstPort(7))))
			ports[binary.BigEndian.Uint16(f[34:])]++
		}
		if len(ports) != 16 {
			t.Errorf("%d source ports seen, want 16: %v", len(ports), ports)
		}
		for p, n := range ports {
			if p < DefaultTrafgenBasePort || p >= DefaultTrafgenBasePort+16 || n < 1000/16 || n > 1000/16+1 {
				t.Errorf("port %d: %d frames; want ports %d-%d, %d or %d each", p, n, DefaultTrafgenBasePort, DefaultTrafgenBasePort+15, 1000/16, 1000/16+1)
			}
		}
		t.Logf("%d packets in %v (%.0f/s), trafgen cpu %v", r.Packets, r.Wall, r.PPS(), r.CPUTime)
	})
	t.Run("duration", func(t *testing.T) {
		cfg := cfg
		cfg.Duration = 300 * time.Millisecond
		r, err := RunTrafgen(context.Background(), l.Router, cfg)
		if err != nil {
			t.Fatal(err)
		}
		if r.Packets == 0 || r.Wall < cfg.Duration || r.Wall > cfg.Duration+3*time.Second {
			t.Errorf("%d packets in %v; want some, in about %v", r.Packets, r.Wall, cfg.Duration)
		}
		t.Logf("%d packets in %v (%.0f/s), trafgen cpu %v", r.Packets, r.Wall, r.PPS(), r.CPUTime)
	})
}

func TestConnRateDirect(t *testing.T) {
	l := lab.UpForTest(t, lab.Options{Backends: 1})
	b := netip.AddrPortFrom(l.Backends[0].Addr, l.Options().HTTPPort)
	ctx := context.Background()
	r, err := RunConnRate(ctx, l.Client, ConnRateConfig{Target: b, Concurrency: 4, Duration: time.Second})
	if err != nil {
		t.Fatal(err)
	}
	t.Log(r)
	if r.Conns == 0 || r.Rate() <= 0 || r.Failures.Total() != 0 {
		t.Errorf("%d connections, %.0f/s, failures %v; want some, and none failed", r.Conns, r.Rate(), r.Failures)
	}
	if r.Request.N == 0 || r.Request.P50 <= 0 || r.Connect.P50 > r.Request.P50 || r.Request.P50 > r.Request.P99 {
		t.Errorf("latencies: connect %v, request %v", r.Connect, r.Request)
	}
	for key, want := range map[string]string{"net.ipv4.ip_local_port_range": "1024\t65535", "net.ipv4.tcp_tw_reuse": "1"} {
		if v, err := l.Client.Sysctl(key); err != nil || v != want {
			t.Errorf("%s = %q (%v), want %q", key, v, err, want)
		}
	}

	// Nothing listens on port 1: every connection is refused.
	closed := netip.AddrPortFrom(l.Backends[0].Addr, 1)
	r, err = RunConnRate(ctx, l.Client, ConnRateConfig{Target: closed, Concurrency: 2, Duration: 200 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if r.Conns != 0 || r.Failures[FailRefused] == 0 || r.Failures.Total() != r.Failures[FailRefused] {
		t.Errorf("to a closed port: %d connections, failures %v; want only refusals", r.Conns, r.Failures)
	}
	// MaxConns bounds the attempts.
	r, err = RunConnRate(ctx, l.Client, ConnRateConfig{Target: b, Concurrency: 3, Duration: 5 * time.Second, MaxConns: 10})
	if err != nil || r.Conns != 10 {
		t.Errorf("MaxConns 10: %d connections, %v", r.Conns, err)
	}
}

// TestConnRateHAProxyVsDirect logs connections per second through haproxy
// and straight to one backend, 2 s each, 16 clients. A measurement, not a
// check: set CULVERT_PEER_MEASURE=1.
func TestConnRateHAProxyVsDirect(t *testing.T) {
	if os.Getenv("CULVERT_PEER_MEASURE") != "1" {
		t.Skip("measurement: set CULVERT_PEER_MEASURE=1 (root, about 10 s)")
	}
	requireBinary(t, "haproxy", "haproxy")
	l := lab.UpForTest(t, lab.Options{})
	h, err := StartHAProxy(l, HAProxyConfig{CPU: 0})
	if err != nil {
		t.Fatal(err)
	}
	defer h.Stop()
	port := l.Options().HTTPPort
	for _, target := range []netip.AddrPort{netip.AddrPortFrom(l.Backends[0].Addr, port), netip.AddrPortFrom(l.VIP, port)} {
		r, err := RunConnRate(context.Background(), l.Client, ConnRateConfig{Target: target, Concurrency: 16, Duration: 2 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		t.Log(r)
	}
}
