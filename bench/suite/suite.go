// Package suite is `culvert bench`: Culvert measured next to the
// alternatives an operator would otherwise use, on the same namespace lab
// with the same generator, in the same run, reported as ratios.
//
// # Method
//
// Every packet-rate measurement gets a fresh two-armed lab (bench/lab):
//
//	generator (router ns, CPU 0)    DUT (appliance ns, CPU 1)         sinks
//	AF_XDP TX on the uplink  ────►  client side ──► server side ────► b0 b1 b2
//	UDP to VIP:7, N flows           threaded NAPI pinned to CPU 1     XDP: count, drop
//
// The generator (bench/pktgen) runs on CPU 0; the device under test and
// its receive path on CPU 1: a veth runs XDP and the AF_XDP copy in the
// sender's softirq, so the appliance's client-side interface gets threaded
// NAPI with its kernel threads pinned to CPU 1 (bench/peer.ThreadedNAPI).
// The sinks are XDP programs on the backends that count and drop the
// generator's frames (so no backend answers). Before measuring, a warm-up
// at a low rate runs until frames reach the sinks (neighbours resolved,
// the bridge has learned every MAC).
//
// Throughput is RFC 2544's: the highest offered rate whose loss stays
// under LossTarget, found by a binary search of short trials (a step fails
// only when a second trial at its rate fails too: a shared machine stalls
// now and then), then confirmed by Repeats trials of Trial each at that
// rate; the median is
// reported with the min and max. Latency is one-way, from a timestamp the
// generator writes in each frame to the AF_XDP receiver on the backends,
// at LatencyLoad of the throughput found (the clocks are one: namespaces
// share CLOCK_MONOTONIC).
//
// Devices under test, each alone on its lab:
//
//	xdp-fwd       an in-kernel XDP forwarder (rewrite MACs, redirect): the ceiling with no AF_XDP
//	reflector     an AF_XDP socket that only rewrites MACs and sends: the I/O ceiling Culvert runs on
//	nftables      the kernel as a balancer without IPVS: DNAT+SNAT with conntrack
//	culvert-nat   Culvert, full NAT
//	culvert-dsr   Culvert, direct server return
//	culvert-ipip  Culvert, IP-in-IP to the backends
//
// Connection setup rate uses real TCP clients (bench/peer.RunConnRate) in
// the client namespace, each a loop of connect, HTTP/1.0 GET, read, close:
// straight to a backend (no balancer: the limit of the figure), through
// HAProxy in TCP mode (one thread, pinned to CPU 1), through nftables and
// through Culvert nat.
//
// Finally the generator alone, into an XDP drop sink on the peer of its
// interface, next to netsniff-ng's trafgen (--cpus 1) on the same link.
//
// Everything runs in namespaces with addresses from 198.18.0.0/15, bounded
// in time: each trial by its duration, each search by its step count.
package suite

import (
	"io"
	"slices"
	"time"
)

// DUT names, in report order.
const (
	DUTXDPFwd      = "xdp-fwd"
	DUTReflector   = "reflector"
	DUTNFTables    = "nftables"
	DUTCulvertNAT  = "culvert-nat"
	DUTCulvertDSR  = "culvert-dsr"
	DUTCulvertIPIP = "culvert-ipip"
)

// AllDUTs lists every device under test, in report order.
var AllDUTs = []string{DUTXDPFwd, DUTReflector, DUTNFTables, DUTCulvertNAT, DUTCulvertDSR, DUTCulvertIPIP}

// Conn-rate targets.
const (
	ConnDirect   = "direct"
	ConnHAProxy  = "haproxy"
	ConnNFTables = "nftables"
	ConnCulvert  = "culvert-nat"
)

// AllConnTargets lists every connection-rate target, in report order.
var AllConnTargets = []string{ConnDirect, ConnHAProxy, ConnNFTables, ConnCulvert}

// Options shape a run. The zero value is the standard set: every DUT at
// 64 and 1518 bytes, 256 flows, 2 s trials, three of each, loss under
// 0.1%.
type Options struct {
	DUTs  []string // packet-rate devices; nil means AllDUTs, empty non-nil none
	Conns []string // connection-rate targets; nil means AllConnTargets
	Sizes []int    // frame sizes with FCS; nil means 64 and 1518
	Flows int      // distinct flows (source ports); 0 means 256

	Trial       time.Duration // confirmation trial; 0 means 2 s
	SearchTrial time.Duration // search step; 0 means 1 s
	Steps       int           // binary search steps; 0 means 6
	Repeats     int           // confirmation trials; 0 means 3
	LossTarget  float64       // 0 means 0.001 (0.1%)
	LatencyLoad float64       // fraction of the throughput for the latency trial; 0 means 0.5

	ConnTrial       time.Duration // per connection-rate trial; 0 means 2 s
	ConnConcurrency int           // TCP clients; 0 means 16

	// Trafgen compares the generator with trafgen; a missing trafgen is
	// reported, not fatal.
	NoTrafgen bool

	// Exe is the culvert binary to run the daemon with (`Exe run`), and
	// Env what to add to its environment.
	Exe string
	Env []string

	// ProfileDir, when set, has each Culvert daemon write a CPU profile
	// there (culvert-MODE-N.pprof) for `go tool pprof`.
	ProfileDir string

	// GenCPU and DUTCPU place the generator and the device under test.
	// Zero values mean 0 and 1.
	GenCPU, DUTCPU int
	// SenderNAPI leaves the appliance's receive path (veth NAPI: XDP, the
	// AF_XDP copy, the kernel's forwarding) in the sender's softirq, on
	// the generator's CPU, instead of threaded NAPI on the DUT's CPU: the
	// DUT's CPU then carries only its own work and its transmit path.
	SenderNAPI bool
	// BusyPoll runs Culvert and the reflector with AF_XDP preferred busy
	// polling: the worker runs the veth's NAPI itself instead of switching
	// with a NAPI thread on its CPU (napi_defer_hard_irqs 2 and
	// gro_flush_timeout 200 µs on the appliance's interfaces, and no NAPI
	// thread for them: at SCHED_FIFO under load it would keep the NAPI
	// and starve the worker, at normal priority it switches with it).
	// Whenever the worker does not hold the NAPI, the receive path runs
	// in the sender's softirq, on the generator's CPU: this is the best
	// configuration for AF_XDP on veth, not the strict placement.
	BusyPoll bool

	// Progress receives a live progress line (carriage returns); nil is
	// quiet.
	Progress io.Writer
}

func (o Options) withDefaults() Options {
	if o.DUTs == nil {
		o.DUTs = AllDUTs
	}
	if o.Conns == nil {
		o.Conns = AllConnTargets
	}
	if o.Sizes == nil {
		o.Sizes = []int{64, 1518}
	}
	if o.Flows == 0 {
		o.Flows = 256
	}
	if o.Trial == 0 {
		o.Trial = 2 * time.Second
	}
	if o.SearchTrial == 0 {
		o.SearchTrial = time.Second
	}
	if o.Steps == 0 {
		o.Steps = 6
	}
	if o.Repeats == 0 {
		o.Repeats = 3
	}
	if o.LossTarget == 0 {
		o.LossTarget = 0.001
	}
	if o.LatencyLoad == 0 {
		o.LatencyLoad = 0.5
	}
	if o.ConnTrial == 0 {
		o.ConnTrial = 2 * time.Second
	}
	if o.ConnConcurrency == 0 {
		o.ConnConcurrency = 16
	}
	if o.GenCPU == 0 && o.DUTCPU == 0 {
		o.DUTCPU = 1
	}
	return o
}

// Summary is the median, min and max of repeated trials.
type Summary struct {
	Median, Min, Max float64
}

// Summarize returns the median, min and max of v (the mean of the middle
// two for an even count); zero for none.
func Summarize(v []float64) Summary {
	if len(v) == 0 {
		return Summary{}
	}
	s := slices.Clone(v)
	slices.Sort(s)
	m := s[len(s)/2]
	if len(s)%2 == 0 {
		m = (s[len(s)/2-1] + s[len(s)/2]) / 2
	}
	return Summary{Median: m, Min: s[0], Max: s[len(s)-1]}
}

// Step is one trial of a throughput search.
type Step struct {
	Offered  float64 `json:"offered_pps"`  // the generator's achieved send rate
	Received float64 `json:"received_pps"` // at the sinks
	Loss     float64 `json:"loss"`         // fraction of the frames sent that did not arrive
}

// Throughput is one DUT at one frame size.
type Throughput struct {
	DUT   string  `json:"dut"`
	Size  int     `json:"frame_size"`
	Flows int     `json:"flows"`
	Error string  `json:"error,omitempty"`
	PPS   Summary `json:"pps"`
	Gbps  Summary `json:"gbps"` // PPS × frame size × 8
	Loss  Summary `json:"loss"` // of the confirmation trials
	// GenLimited: the generator's full rate passed with no loss: the DUT
	// may be faster than this figure.
	GenLimited bool     `json:"generator_limited"`
	Trials     []Step   `json:"trials"` // the confirmation trials
	Search     []Step   `json:"search"` // the search, in order
	Latency    *Latency `json:"latency,omitempty"`
	Notes      []string `json:"notes,omitempty"`
}

// Latency is the one-way latency of one DUT at one load.
type Latency struct {
	LoadPPS                 float64      `json:"load_pps"`
	P50, P99, P999, Max     float64      // microseconds
	Frames, Lost, Reordered uint64       `json:",omitempty"`
	CDF                     [][2]float64 `json:"cdf_us"` // (latency µs, fraction at or below)
	Error                   string       `json:"error,omitempty"`
}

// ConnRate is one connection-rate target.
type ConnRate struct {
	Target      string  `json:"target"`
	Error       string  `json:"error,omitempty"`
	Rate        Summary `json:"conns_per_second"`
	Failures    uint64  `json:"failures"`
	ConnectP50  float64 `json:"connect_p50_us"`
	ConnectP99  float64 `json:"connect_p99_us"`
	RequestP50  float64 `json:"request_p50_us"`
	RequestP99  float64 `json:"request_p99_us"`
	RequestP999 float64 `json:"request_p999_us"`
	Concurrency int     `json:"concurrency"`
}

// GenCompare is the generator next to trafgen on one link.
type GenCompare struct {
	Culvert Summary `json:"culvert_pps"`
	Trafgen Summary `json:"trafgen_pps"`
	Error   string  `json:"error,omitempty"`
}

// Report is everything a run measured.
type Report struct {
	Started    time.Time     `json:"started"`
	Took       time.Duration `json:"took_ns"`
	Options    Options       `json:"-"`
	Kernel     string        `json:"kernel"`
	CPUs       int           `json:"cpus"`
	Throughput []Throughput  `json:"throughput"`
	Conns      []ConnRate    `json:"connections"`
	Generator  *GenCompare   `json:"generator,omitempty"`
}

// Find returns the throughput of dut at size, if measured.
func (r *Report) Find(dut string, size int) (Throughput, bool) {
	for _, t := range r.Throughput {
		if t.DUT == dut && t.Size == size {
			return t, true
		}
	}
	return Throughput{}, false
}

// FindConn returns the connection rate of target, if measured.
func (r *Report) FindConn(target string) (ConnRate, bool) {
	for _, c := range r.Conns {
		if c.Target == target {
			return c, true
		}
	}
	return ConnRate{}, false
}
