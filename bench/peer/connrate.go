package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/vishvananda/netns"

	"github.com/culvert-lb/culvert/bench/lab"
	"github.com/culvert-lb/culvert/bench/pktgen"
)

// FailureKind classifies a failed connection of ConnRate.
type FailureKind int

const (
	// FailRefused: the connection was refused (RST to the SYN): nothing
	// listening, or a balancer with no backend to give.
	FailRefused FailureKind = iota
	// FailReset: the connection was reset (or the pipe broke) after it was
	// set up.
	FailReset
	// FailTimeout: no connection, or no complete reply, within
	// ConnRateConfig.Timeout.
	FailTimeout
	// FailNoPort: the client had no local port left (EADDRNOTAVAIL).
	FailNoPort
	// FailBadReply: the reply did not start as expected (ConnRateConfig.Expect).
	FailBadReply
	// FailOther: anything else (unreachable, ...).
	FailOther

	numFailureKinds
)

// String returns the kind's name.
func (k FailureKind) String() string {
	switch k {
	case FailRefused:
		return "refused"
	case FailReset:
		return "reset"
	case FailTimeout:
		return "timeout"
	case FailNoPort:
		return "no-local-port"
	case FailBadReply:
		return "bad-reply"
	case FailOther:
		return "other"
	}
	return fmt.Sprintf("failure-%d", int(k))
}

// Failures counts failed connections by kind.
type Failures [numFailureKinds]uint64

// Total returns the number of failures of every kind.
func (f Failures) Total() uint64 {
	var n uint64
	for _, v := range f {
		n += v
	}
	return n
}

// String lists the non-zero counts, "refused 3, timeout 1", or "none".
func (f Failures) String() string {
	var parts []string
	for k, v := range f {
		if v > 0 {
			parts = append(parts, fmt.Sprintf("%v %d", FailureKind(k), v))
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, ", ")
}

// classify returns the kind of a dial, write or read error.
func classify(err error) FailureKind {
	var ne net.Error
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return FailRefused
	case errors.Is(err, syscall.ECONNRESET), errors.Is(err, syscall.EPIPE), errors.Is(err, syscall.ECONNABORTED):
		return FailReset
	case errors.Is(err, syscall.EADDRNOTAVAIL):
		return FailNoPort
	case errors.Is(err, os.ErrDeadlineExceeded), errors.Is(err, context.DeadlineExceeded),
		errors.Is(err, syscall.ETIMEDOUT), errors.As(err, &ne) && ne.Timeout():
		return FailTimeout
	}
	return FailOther
}

// DefaultConnRequest is ConnRate's request when ConnRateConfig.Request is
// nil: HTTP/1.0, so that the server closes the connection after its reply.
var DefaultConnRequest = []byte("GET / HTTP/1.0\r\n\r\n")

// ConnRateConfig describes a ConnRate run. The zero value, with Target
// set, runs 16 clients for a second with the default request.
type ConnRateConfig struct {
	// Target is the VIP (through a balancer) or a backend (no balancer:
	// the limit). Required.
	Target netip.AddrPort
	// Concurrency is the number of clients, each a loop of connect, send
	// the request, read the reply to the end, close; 0 means 16.
	Concurrency int
	// Duration bounds the run; 0 means a second. MaxConns, if non-zero,
	// bounds the number of connections attempted too.
	Duration time.Duration
	MaxConns uint64
	// Request is sent on each connection; nil means DefaultConnRequest.
	// Expect is the prefix the reply must start with; nil means "HTTP/1."
	// for the default request and any non-empty reply otherwise.
	Request, Expect []byte
	// Timeout bounds each connection, from dial to the end of the reply; 0
	// means 2 s.
	Timeout time.Duration
}

// LatencySummary summarizes a set of latencies. The zero value is an
// empty set.
type LatencySummary struct {
	N                                   int // samples
	Min, Mean, P50, P90, P99, P999, Max time.Duration
}

// String formats the summary as "p50 120µs p90 ... max ... (n 1000)".
func (s LatencySummary) String() string {
	return fmt.Sprintf("p50 %v p90 %v p99 %v p99.9 %v max %v (n %d)", s.P50, s.P90, s.P99, s.P999, s.Max, s.N)
}

// ConnRateResult is the outcome of a ConnRate run.
type ConnRateResult struct {
	Target      netip.AddrPort
	Concurrency int
	Conns       uint64 // complete: connected, sent, reply read to the end
	Failures    Failures
	Elapsed     time.Duration // from the first client's start to the last one's end
	// Connect is the time to set up the connection (SYN to the dial
	// returning); Request from dial to the end of the reply, of the
	// complete connections.
	Connect, Request LatencySummary
}

// Rate returns complete connections per second.
func (r ConnRateResult) Rate() float64 {
	if r.Elapsed <= 0 {
		return 0
	}
	return float64(r.Conns) / r.Elapsed.Seconds()
}

// String is a one-line report.
func (r ConnRateResult) String() string {
	return fmt.Sprintf("%v: %.0f conn/s (%d in %v, %d clients), failures: %v; connect %v; request %v",
		r.Target, r.Rate(), r.Conns, r.Elapsed.Round(time.Millisecond), r.Concurrency, r.Failures, r.Connect, r.Request)
}

// summarize summarizes the latencies h recorded: count, min, max and
// mean exactly, percentiles within its 0.8% bucket resolution.
func summarize(h *pktgen.Histogram) LatencySummary {
	return LatencySummary{N: int(h.Count()), Min: h.Min(), Mean: h.Mean(), Max: h.Max(),
		P50: h.Percentile(0.50), P90: h.Percentile(0.90), P99: h.Percentile(0.99), P999: h.Percentile(0.999)}
}

// client is one ConnRate loop's tallies.
type client struct {
	conns            uint64
	fail             Failures
	connect, request pktgen.Histogram
	err              error // could not enter the namespace
}

// RunConnRate runs cfg.Concurrency TCP clients in h's namespace against
// cfg.Target until cfg.Duration has passed, cfg.MaxConns connections were
// attempted or ctx ends, and reports the rate of complete connections,
// the failures by kind and the latencies. It sets h's
// net.ipv4.ip_local_port_range to "1024 65535" and net.ipv4.tcp_tw_reuse
// to 1 first, for the many short connections.
//
// Each client runs on a goroutine locked to an OS thread that has entered
// h's namespace once, so its sockets are made there without a namespace
// switch per connection; the thread exits with the client.
func RunConnRate(ctx context.Context, h *lab.Host, cfg ConnRateConfig) (ConnRateResult, error) {
	if !cfg.Target.IsValid() || cfg.Target.Port() == 0 {
		return ConnRateResult{}, fmt.Errorf("connrate: target %v: want an address and port", cfg.Target)
	}
	if cfg.Concurrency == 0 {
		cfg.Concurrency = 16
	}
	if cfg.Duration == 0 {
		cfg.Duration = time.Second
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	if cfg.Request == nil {
		cfg.Request = DefaultConnRequest
		if cfg.Expect == nil {
			cfg.Expect = []byte("HTTP/1.")
		}
	}
	if cfg.Concurrency < 0 || cfg.Duration < 0 || cfg.Timeout < 0 {
		return ConnRateResult{}, fmt.Errorf("connrate: negative concurrency, duration or timeout")
	}
	for _, kv := range [][2]string{{"net.ipv4.ip_local_port_range", "1024 65535"}, {"net.ipv4.tcp_tw_reuse", "1"}} {
		if err := h.SetSysctl(kv[0], kv[1]); err != nil {
			return ConnRateResult{}, fmt.Errorf("connrate: %w", err)
		}
	}
	ctx, cancel := context.WithTimeout(ctx, cfg.Duration)
	defer cancel()
	var attempts atomic.Uint64
	clients := make([]*client, cfg.Concurrency)
	var wg sync.WaitGroup
	start := time.Now()
	for i := range clients {
		c := new(client)
		clients[i] = c
		wg.Add(1)
		go func() {
			defer wg.Done()
			runtime.LockOSThread() // never unlocked: the thread is in h's namespace
			if err := netns.Set(h.NS); err != nil {
				c.err = fmt.Errorf("connrate: enter %s: %w", h.Name, err)
				cancel()
				return
			}
			c.run(ctx, cfg, &attempts)
		}()
	}
	wg.Wait()
	r := ConnRateResult{Target: cfg.Target, Concurrency: cfg.Concurrency, Elapsed: time.Since(start)}
	var connect, request pktgen.Histogram
	var errs []error
	for _, c := range clients {
		errs = append(errs, c.err)
		r.Conns += c.conns
		for k, v := range c.fail {
			r.Failures[k] += v
		}
		connect.Merge(&c.connect)
		request.Merge(&c.request)
	}
	r.Connect, r.Request = summarize(&connect), summarize(&request)
	return r, errors.Join(errs...)
}

// run is one client's loop. It ends at ctx's deadline, read from the clock
// rather than from ctx.Err: under load the context's timer can fire late,
// while a dial already sees the deadline passed and fails at once. A
// connection in flight at the end is abandoned and not counted either way.
func (c *client) run(ctx context.Context, cfg ConnRateConfig, attempts *atomic.Uint64) {
	end, _ := ctx.Deadline()
	over := func() bool { return ctx.Err() != nil || !time.Now().Before(end) }
	d := net.Dialer{Timeout: cfg.Timeout}
	buf := make([]byte, 16<<10)
	target := cfg.Target.String()
	for !over() {
		if cfg.MaxConns > 0 && attempts.Add(1) > cfg.MaxConns {
			return
		}
		t0 := time.Now()
		conn, err := d.DialContext(ctx, "tcp4", target)
		if err != nil {
			if over() {
				return
			}
			c.fail[classify(err)]++
			continue
		}
		t1 := time.Now()
		deadline := t0.Add(cfg.Timeout)
		if deadline.After(end) {
			deadline = end
		}
		kind, ok := exchange(conn, deadline, cfg.Request, cfg.Expect, buf)
		conn.Close()
		if !ok {
			if kind == FailTimeout && over() {
				return
			}
			c.fail[kind]++
			continue
		}
		c.conns++
		c.connect.Record(t1.Sub(t0))
		c.request.Record(time.Since(t0))
	}
}

// exchange sends req on conn and reads the reply to EOF before deadline;
// the reply must start with expect, or be non-empty if expect is nil.
func exchange(conn net.Conn, deadline time.Time, req, expect, buf []byte) (FailureKind, bool) {
	if err := conn.SetDeadline(deadline); err != nil {
		return classify(err), false
	}
	if _, err := conn.Write(req); err != nil {
		return classify(err), false
	}
	got, matched, bad := 0, 0, false
	for {
		n, err := conn.Read(buf)
		if k := min(n, len(expect)-matched); k > 0 {
			bad = bad || !bytes.Equal(buf[:k], expect[matched:matched+k])
			matched += k
		}
		got += n
		if err == io.EOF {
			break
		}
		if err != nil {
			return classify(err), false
		}
	}
	if got == 0 || bad || matched < len(expect) {
		return FailBadReply, false
	}
	return 0, true
}
