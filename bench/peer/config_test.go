package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/bench/pktgen"
)

func addrs(s ...string) []netip.Addr {
	var out []netip.Addr
	for _, a := range s {
		out = append(out, netip.MustParseAddr(a))
	}
	return out
}

func TestNFTablesRuleset(t *testing.T) {
	base := NFTablesConfig{
		VIP:      netip.MustParseAddr("198.18.1.1"),
		Backends: addrs("198.18.0.11", "198.18.0.12", "198.18.0.13"),
		Services: []Service{{TCP, 80}, {UDP, 7}},
	}
	hash := `table ip culvert_peer {
	chain prerouting {
		type nat hook prerouting priority dstnat; policy accept;
		ip daddr 198.18.1.1 meta l4proto . th dport { tcp . 80, udp . 7 } dnat ip to jhash ip saddr . th sport . ip daddr . th dport . meta l4proto mod 3 seed 0x63756c76 map { 0 : 198.18.0.11, 1 : 198.18.0.12, 2 : 198.18.0.13 }
	}
	chain postrouting {
		type nat hook postrouting priority srcnat; policy accept;
		ct status dnat snat ip to 198.18.2.1
	}
}
`
	rr := base
	rr.Spread = SpreadRoundRobin
	rr.SNAT = netip.MustParseAddr("198.18.2.9")
	rr.Backends = rr.Backends[:2]
	rrWant := strings.NewReplacer(
		"jhash ip saddr . th sport . ip daddr . th dport . meta l4proto mod 3 seed 0x63756c76", "numgen inc mod 2",
		", 2 : 198.18.0.13", "",
		"198.18.2.1", "198.18.2.9").Replace(hash)
	for _, tc := range []struct {
		name string
		cfg  NFTablesConfig
		want string
	}{
		{"hash, default snat", base, hash},
		{"round robin, two backends, own snat", rr, rrWant},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.Ruleset()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
		})
	}

	bad := NFTablesConfig{
		VIP:      netip.MustParseAddr("2001:2::1"),
		Backends: addrs("198.18.0.11", "2001:2::2"),
		Services: []Service{{Proto: 1, Port: 80}, {UDP, 0}},
		Spread:   Spread(7),
	}
	_, err := bad.Ruleset()
	if err == nil {
		t.Fatal("a bad config made a ruleset")
	}
	for _, want := range []string{"vip 2001:2::1", "backends[1]", "services[0]", "services[1]", "spread spread-7"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if _, err := (NFTablesConfig{VIP: base.VIP}).Ruleset(); err == nil || !strings.Contains(err.Error(), "no backends") || !strings.Contains(err.Error(), "no services") {
		t.Errorf("empty config: %v", err)
	}
}

func TestHAProxyText(t *testing.T) {
	c := HAProxyConfig{
		Listen:   netip.MustParseAddrPort("198.18.1.1:80"),
		Backends: []netip.AddrPort{netip.MustParseAddrPort("198.18.0.11:80"), netip.MustParseAddrPort("198.18.0.12:8080")},
		MaxConn:  9000,
	}
	got, err := c.Text()
	if err != nil {
		t.Fatal(err)
	}
	want := `# culvert bench peer: haproxy as an L4 balancer
global
	nbthread 1
	maxconn 9000
defaults
	mode tcp
	maxconn 9000
	timeout connect 5000ms
	timeout client 30000ms
	timeout server 30000ms
frontend vip
	bind 198.18.1.1:80
	default_backend servers
backend servers
	balance roundrobin
	server s0 198.18.0.11:80
	server s1 198.18.0.12:8080
`
	if got != want {
		t.Errorf("got\n%s\nwant\n%s", got, want)
	}
	if strings.Contains(got, "log") {
		t.Error("the configuration logs")
	}
	_, err = HAProxyConfig{Backends: []netip.AddrPort{{}}}.Text()
	for _, w := range []string{"listen", "backends[0]", "maxconn 0"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v lacks %q", err, w)
		}
	}
}

func TestMaxConnFor(t *testing.T) {
	for _, tc := range []struct {
		nofile uint64
		want   int
	}{
		{20000, 9950}, // this machine's hard limit: haproxy refuses maxconn 100000
		{1024, 462},
		{150, 1},
		{1 << 30, 1 << 20},
	} {
		if got := maxConnFor(tc.nofile); got != tc.want {
			t.Errorf("maxConnFor(%d) = %d, want %d", tc.nofile, got, tc.want)
		}
	}
}

func trafgenBase() TrafgenConfig {
	return TrafgenConfig{
		Iface:  "eth0",
		SrcMAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 1}, DstMAC: net.HardwareAddr{0x02, 0, 0, 0, 0, 2},
		Src: netip.MustParseAddr("198.19.0.2"), Dst: netip.MustParseAddr("198.18.1.1"), DstPort: 7,
		CPU: 1,
	}
}

func TestTrafgenConf(t *testing.T) {
	one := trafgenBase()
	one.Flows, one.BasePort, one.Payload, one.CPU = 1, 5000, 100, AnyCPU
	for _, tc := range []struct {
		name    string
		cfg     TrafgenConfig
		want    string
		workers int
	}{
		{"defaults, cpu 1", trafgenBase(), `/* culvert bench peer: 60-byte UDP frames, 256 flows */
cpu(1): {
	eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01),
	ipv4(saddr=198.19.0.2, daddr=198.18.1.1, ttl=64),
	udp(sp=dinc(10000, 10255, 1), dp=7),
	fill(0x00, 18)
}
`, 2},
		{"one flow, any cpu", one, `/* culvert bench peer: 142-byte UDP frames, 1 flows */
{
	eth(da=02:00:00:00:00:02, sa=02:00:00:00:00:01),
	ipv4(saddr=198.19.0.2, daddr=198.18.1.1, ttl=64),
	udp(sp=5000, dp=7),
	fill(0x00, 100)
}
`, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := tc.cfg.Conf()
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got\n%s\nwant\n%s", got, tc.want)
			}
			if w := tc.cfg.workers(); w != tc.workers {
				t.Errorf("%d workers, want %d", w, tc.workers)
			}
		})
	}
	bad := trafgenBase()
	bad.SrcMAC, bad.Dst, bad.DstPort, bad.BasePort, bad.Flows, bad.Payload = nil, netip.Addr{}, 0, 65500, 100, 2000
	_, err := bad.Conf()
	for _, w := range []string{"SrcMAC", "want IPv4", "destination port 0", "100 flows", "payload 2000"} {
		if err == nil || !strings.Contains(err.Error(), w) {
			t.Errorf("error %v lacks %q", err, w)
		}
	}
	noBound := trafgenBase()
	if _, err := RunTrafgen(context.Background(), nil, noBound); err == nil || !strings.Contains(err.Error(), "for ever") {
		t.Errorf("a run without Count or Duration: %v", err)
	}
}

func TestParseTrafgenOutput(t *testing.T) {
	// trafgen 0.6.8, --cpus 2 with the frame on CPU 1, interrupted.
	const out = `     1 packets to schedule
    60 bytes in total
Running! Hang up with ^C!


      636416 packets outgoing
    38184960 bytes outgoing
           0 sec, 0 usec on CPU0 (0 packets)
           1 sec, 853828 usec on CPU1 (636416 packets)
`
	r, err := ParseTrafgenOutput(out)
	if err != nil {
		t.Fatal(err)
	}
	if r.Packets != 636416 || r.Bytes != 38184960 || r.CPUTime != 1853828*time.Microsecond {
		t.Errorf("got %d packets, %d bytes, cpu %v", r.Packets, r.Bytes, r.CPUTime)
	}
	r.Wall = 2 * time.Second
	if r.PPS() != 318208 {
		t.Errorf("pps %v", r.PPS())
	}
	for name, bad := range map[string]string{
		"nothing":            "Running! Hang up with ^C!\n",
		"no bytes":           "  5 packets outgoing\n",
		"workers disagree":   "  5 packets outgoing\n  300 bytes outgoing\n  0 sec, 5 usec on CPU0 (4 packets)\n",
		"a count that fails": "  99999999999999999999999 packets outgoing\n  300 bytes outgoing\n",
	} {
		if _, err := ParseTrafgenOutput(bad); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
	if (TrafgenResult{Packets: 5}).PPS() != 0 {
		t.Error("PPS without a wall time")
	}
}

func TestSummarize(t *testing.T) {
	var empty pktgen.Histogram
	if s := summarize(&empty); s != (LatencySummary{}) {
		t.Errorf("empty: %+v", s)
	}
	var one, four, hundred pktgen.Histogram
	one.Record(7 * time.Millisecond)
	for _, ms := range []time.Duration{4, 1, 3, 2} {
		four.Record(ms * time.Millisecond)
	}
	for i := 100; i >= 1; i-- {
		hundred.Record(time.Duration(i) * time.Millisecond)
	}
	near := func(got, want time.Duration) bool { return got >= want-want/100 && got <= want+want/100 } // the histogram's 0.8%
	for _, tc := range []struct {
		name string
		in   *pktgen.Histogram
		want LatencySummary
	}{
		{"one", &one, LatencySummary{N: 1, Min: 7e6, Mean: 7e6, P50: 7e6, P90: 7e6, P99: 7e6, P999: 7e6, Max: 7e6}},
		{"unsorted four", &four, LatencySummary{N: 4, Min: 1e6, Mean: 2500e3, P50: 2e6, P90: 4e6, P99: 4e6, P999: 4e6, Max: 4e6}},
		{"1..100", &hundred, LatencySummary{N: 100, Min: 1e6, Mean: 50500e3, P50: 50e6, P90: 90e6, P99: 99e6, P999: 100e6, Max: 100e6}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := summarize(tc.in)
			if got.N != tc.want.N || got.Min != tc.want.Min || got.Max != tc.want.Max || got.Mean != tc.want.Mean ||
				!near(got.P50, tc.want.P50) || !near(got.P90, tc.want.P90) || !near(got.P99, tc.want.P99) || !near(got.P999, tc.want.P999) {
				t.Errorf("got %+v\nwant %+v (percentiles within 1%%)", got, tc.want)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	op := func(err error) error {
		return &net.OpError{Op: "dial", Net: "tcp4", Err: os.NewSyscallError("connect", err)}
	}
	for _, tc := range []struct {
		err  error
		want FailureKind
	}{
		{op(syscall.ECONNREFUSED), FailRefused},
		{op(syscall.ECONNRESET), FailReset},
		{op(syscall.EPIPE), FailReset},
		{op(syscall.EADDRNOTAVAIL), FailNoPort},
		{op(syscall.ETIMEDOUT), FailTimeout},
		{&net.OpError{Op: "read", Err: os.ErrDeadlineExceeded}, FailTimeout},
		{context.DeadlineExceeded, FailTimeout},
		{op(syscall.EHOSTUNREACH), FailOther},
		{errors.New("odd"), FailOther},
	} {
		if got := classify(tc.err); got != tc.want {
			t.Errorf("classify(%v) = %v, want %v", tc.err, got, tc.want)
		}
	}
}

func TestStrings(t *testing.T) {
	var f Failures
	if f.String() != "none" || f.Total() != 0 {
		t.Errorf("empty failures: %q, %d", f, f.Total())
	}
	f[FailRefused], f[FailTimeout] = 3, 1
	if f.String() != "refused 3, timeout 1" || f.Total() != 4 {
		t.Errorf("failures: %q, %d", f, f.Total())
	}
	for _, tc := range []struct {
		got, want string
	}{
		{FailReset.String(), "reset"},
		{FailNoPort.String(), "no-local-port"},
		{FailBadReply.String(), "bad-reply"},
		{FailOther.String(), "other"},
		{FailureKind(42).String(), "failure-42"},
		{SpreadHash.String(), "hash"},
		{SpreadRoundRobin.String(), "round-robin"},
		{TCP.String(), "tcp"},
		{UDP.String(), "udp"},
		{Protocol(1).String(), "proto-1"},
		{Service{UDP, 7}.String(), "7/udp"},
		{fmt.Sprint(ConnRateResult{Target: netip.MustParseAddrPort("198.18.0.11:80"), Conns: 10, Elapsed: time.Second, Concurrency: 2})[:38], "198.18.0.11:80: 10 conn/s (10 in 1s, 2"},
	} {
		if tc.got != tc.want {
			t.Errorf("got %q, want %q", tc.got, tc.want)
		}
	}
}

func TestExitBySignal(t *testing.T) {
	if err := exitBySignal(nil, syscall.SIGINT); err != nil {
		t.Errorf("clean exit: %v", err)
	}
	for _, tc := range []struct {
		script string
		ok     bool
	}{
		{"kill -INT $$", true},
		{"exit 130", true}, // 128 + SIGINT
		{"exit 1", false},
		{"kill -TERM $$", false},
	} {
		err := exec.Command("sh", "-c", tc.script).Run()
		if got := exitBySignal(err, syscall.SIGINT) == nil; got != tc.ok {
			t.Errorf("%q (%v): accepted %v, want %v", tc.script, err, got, tc.ok)
		}
	}
}
