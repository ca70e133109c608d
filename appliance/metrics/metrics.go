// Package metrics exports the appliance's counters to Prometheus: per
// queue (worker) traffic with drop and pass reasons, connection-table
// occupancy and refusals, per-service and per-backend traffic, live flows
// and health.
//
// A Collector reads a Source at every scrape and builds constant metrics
// from it; nothing is kept between scrapes, so the dataplane's own counters
// stay the only state. Scrapes never touch the packet path: they read the
// counters workers publish once per batch.
package metrics

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/culvert-lb/culvert/conntrack"
	"github.com/culvert-lb/culvert/dataplane"
	"github.com/culvert-lb/culvert/internal/header"
)

// Source is what a Collector reads at each scrape. Its methods are called
// from the scrape's goroutine; several scrapes may run at once.
type Source interface {
	// Queues returns each worker's counters, indexed by queue number.
	Queues() []dataplane.Stats
	// Conntrack returns the connection table's counters.
	Conntrack() conntrack.Stats
	// Services returns the configured services and their counters.
	Services() []Service
	// Backends returns the configured backends and their counters.
	Backends() []Backend
}

// Service is one virtual service and its counters.
type Service struct {
	Name  string // the service label; "" means VIP:port/proto
	VIP   netip.Addr
	Port  uint16
	Proto string // "tcp" or "udp"
	dataplane.ServiceStats
}

// Backend is one real server and its counters. Its counters cover every
// service it serves: Service names them all (comma-separated) when there
// are several.
type Backend struct {
	Service string         // the service label
	Addr    netip.AddrPort // the backend label, and the key of its health state
	dataplane.BackendStats
}

// Metric names.
const (
	namespace = "culvert"
)

// Collector is a prometheus.Collector over a Source. Safe for concurrent
// scrapes; the zero value is not usable (use New).
type Collector struct {
	src    Source
	health func(netip.AddrPort) int

	rxPackets, rxBytes, txPackets, txBytes, passes, drops *prometheus.Desc
	portClashes                                           *prometheus.Desc
	ctLive, ctCapacity, ctRefused, ctInserted, ctExpired  *prometheus.Desc
	svcPackets, svcBytes, svcNewFlows                     *prometheus.Desc
	bePackets, beBytes, beNewFlows, beActive, beUp        *prometheus.Desc

	ha *haMetrics // nil unless WithHA
}

// New returns a Collector reading src. health gives a backend's state for
// culvert_backend_up: 1 up or not yet known, 0 down; nil leaves that
// metric out.
func New(src Source, health func(netip.AddrPort) int) *Collector {
	d := func(sub, name, help string, labels ...string) *prometheus.Desc {
		return prometheus.NewDesc(prometheus.BuildFQName(namespace, sub, name), help, labels, nil)
	}
	return &Collector{
		src:    src,
		health: health,

		rxPackets: d("queue", "rx_packets_total", "Frames received on the queue.", "queue"),
		rxBytes:   d("queue", "rx_bytes_total", "Bytes received on the queue.", "queue"),
		txPackets: d("queue", "tx_packets_total", "Frames transmitted by the queue's worker.", "queue"),
		txBytes:   d("queue", "tx_bytes_total", "Bytes transmitted by the queue's worker.", "queue"),
		passes:    d("queue", "passes_total", "Frames handed to the kernel's stack, by reason.", "queue", "reason"),
		drops:     d("queue", "drops_total", "Frames dropped, by reason.", "queue", "reason"),
		portClashes: d("queue", "snat_port_clashes_total",
			"SNAT ports passed over for a new flow because a flow imported from the HA peer held the tuple.", "queue"),

		ctLive:     d("conntrack", "live", "Flows in the connection table."),
		ctCapacity: d("conntrack", "capacity", "Flows the connection table can hold."),
		ctRefused:  d("conntrack", "refused_total", "Flows refused because the connection table was full."),
		ctInserted: d("conntrack", "inserted_total", "Flows inserted into the connection table."),
		ctExpired:  d("conntrack", "expired_total", "Flows removed from the connection table on timeout."),

		svcPackets:  d("service", "packets_total", "Frames of the service's flows transmitted, both directions in nat.", "service", "vip", "port", "proto"),
		svcBytes:    d("service", "bytes_total", "Bytes of the service's flows transmitted, as sent.", "service", "vip", "port", "proto"),
		svcNewFlows: d("service", "new_flows_total", "Flows created for the service.", "service", "vip", "port", "proto"),

		bePackets:  d("backend", "packets_total", "Frames of the backend's flows transmitted, both directions in nat.", "service", "backend"),
		beBytes:    d("backend", "bytes_total", "Bytes of the backend's flows transmitted, as sent.", "service", "backend"),
		beNewFlows: d("backend", "new_flows_total", "Flows created toward the backend.", "service", "backend"),
		beActive:   d("backend", "active_flows", "Flows in the connection table that point at the backend.", "backend"),
		beUp:       d("backend", "up", "Backend health: 1 up or not checked yet, 0 down.", "backend"),
	}
}

// Describe sends every metric's description.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{
		c.rxPackets, c.rxBytes, c.txPackets, c.txBytes, c.passes, c.drops, c.portClashes,
		c.ctLive, c.ctCapacity, c.ctRefused, c.ctInserted, c.ctExpired,
		c.svcPackets, c.svcBytes, c.svcNewFlows,
		c.bePackets, c.beBytes, c.beNewFlows, c.beActive,
	} {
		ch <- d
	}
	if c.health != nil {
		ch <- c.beUp
	}
	if c.ha != nil {
		c.ha.describe(ch)
	}
}

// Collect reads the Source and sends the metrics.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	if c.ha != nil {
		c.ha.collect(ch)
	}
	counter := func(d *prometheus.Desc, v uint64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, float64(v), labels...)
	}
	gauge := func(d *prometheus.Desc, v float64, labels ...string) {
		ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, v, labels...)
	}

	for i, s := range c.src.Queues() {
		q := strconv.Itoa(i)
		counter(c.rxPackets, s.RX, q)
		counter(c.rxBytes, s.RXBytes, q)
		counter(c.txPackets, s.TX, q)
		counter(c.txBytes, s.TXBytes, q)
		counter(c.portClashes, s.PortClashes, q)
		for r := dataplane.DropReason(1); r < dataplane.NumDropReasons; r++ {
			counter(c.drops, s.Drops[r], q, r.String())
		}
		for r := dataplane.PassReason(1); r < dataplane.NumPassReasons; r++ {
			counter(c.passes, s.Passes[r], q, r.String())
		}
	}

	ct := c.src.Conntrack()
	gauge(c.ctLive, float64(ct.Live))
	gauge(c.ctCapacity, float64(ct.Capacity))
	counter(c.ctRefused, ct.Refused)
	counter(c.ctInserted, ct.Inserted)
	counter(c.ctExpired, ct.Expired)

	// Label sets are made unique by summing: two entries that would export
	// the same series (a name given twice) add up rather than fail the
	// scrape.
	type svcKey struct{ name, vip, port, proto string }
	svcs := map[svcKey]dataplane.ServiceStats{}
	var svcOrder []svcKey
	for _, s := range c.src.Services() {
		k := svcKey{s.Name, s.VIP.String(), strconv.Itoa(int(s.Port)), s.Proto}
		if k.name == "" {
			k.name = ServiceLabel(s.VIP, s.Port, s.Proto)
		}
		t, ok := svcs[k]
		if !ok {
			svcOrder = append(svcOrder, k)
		}
		t.Packets += s.Packets
		t.Bytes += s.Bytes
		t.NewFlows += s.NewFlows
		svcs[k] = t
	}
	for _, k := range svcOrder {
		s := svcs[k]
		counter(c.svcPackets, s.Packets, k.name, k.vip, k.port, k.proto)
		counter(c.svcBytes, s.Bytes, k.name, k.vip, k.port, k.proto)
		counter(c.svcNewFlows, s.NewFlows, k.name, k.vip, k.port, k.proto)
	}

	type beKey struct{ svc, be string }
	bes := map[beKey]dataplane.BackendStats{}
	var beOrder []beKey
	active := map[netip.AddrPort]int64{}
	var addrs []netip.AddrPort
	for _, b := range c.src.Backends() {
		k := beKey{b.Service, b.Addr.String()}
		t, ok := bes[k]
		if !ok {
			beOrder = append(beOrder, k)
		}
		t.Packets += b.Packets
		t.Bytes += b.Bytes
		t.NewFlows += b.NewFlows
		bes[k] = t
		if _, ok := active[b.Addr]; !ok {
			addrs = append(addrs, b.Addr)
		}
		active[b.Addr] += b.Active
	}
	for _, k := range beOrder {
		b := bes[k]
		counter(c.bePackets, b.Packets, k.svc, k.be)
		counter(c.beBytes, b.Bytes, k.svc, k.be)
		counter(c.beNewFlows, b.NewFlows, k.svc, k.be)
	}
	for _, a := range addrs {
		gauge(c.beActive, float64(active[a]), a.String())
		if c.health != nil {
			gauge(c.beUp, float64(c.health(a)), a.String())
		}
	}
}

// ServiceLabel is the service label of a service without a name:
// "198.51.100.1:80/tcp".
func ServiceLabel(vip netip.Addr, port uint16, proto string) string {
	return netip.AddrPortFrom(vip, port).String() + "/" + proto
}

// DataplaneSource is a Source over a running dataplane.
type DataplaneSource struct {
	DP *dataplane.Dataplane
	// Name returns the name of the service at vip, proto ("tcp" or "udp")
	// and port, or "". Nil means every service is labelled VIP:port/proto.
	Name func(vip netip.Addr, proto string, port uint16) string
}

// Queues returns the workers' counters.
func (s DataplaneSource) Queues() []dataplane.Stats { return s.DP.WorkerStats() }

// Conntrack returns the connection table's counters.
func (s DataplaneSource) Conntrack() conntrack.Stats { return s.DP.Table().Stats() }

// Services returns the live services of the configuration in force.
func (s DataplaneSource) Services() []Service {
	cfg := s.DP.Config()
	st := s.DP.ServiceStats()
	var out []Service
	for id, sv := range cfg.Services {
		if sv.Removed || id >= len(st) {
			continue
		}
		out = append(out, Service{Name: s.name(&sv), VIP: netip.AddrFrom4(sv.VIP), Port: sv.Port, Proto: protoName(sv.Proto), ServiceStats: st[id]})
	}
	return out
}

// Backends returns the backends of the configuration in force that some
// live service lists. A backend without a port of its own (dsr, ipip, or
// nat keeping the service port) is labelled with the port of the first
// service listing it.
func (s DataplaneSource) Backends() []Backend {
	cfg := s.DP.Config()
	st := s.DP.BackendStats()
	names := make([][]string, len(cfg.Backends))
	ports := make([]uint16, len(cfg.Backends))
	for _, sv := range cfg.Services {
		if sv.Removed {
			continue
		}
		n := s.name(&sv)
		for _, id := range sv.Backends {
			if int(id) >= len(names) {
				continue
			}
			if ports[id] == 0 {
				ports[id] = sv.Port
			}
			names[id] = append(names[id], n)
		}
	}
	var out []Backend
	for id, b := range cfg.Backends {
		if b.Removed || len(names[id]) == 0 || id >= len(st) {
			continue
		}
		port := b.Port
		if port == 0 {
			port = ports[id]
		}
		slices.Sort(names[id])
		out = append(out, Backend{
			Service:      strings.Join(slices.Compact(names[id]), ","),
			Addr:         netip.AddrPortFrom(netip.AddrFrom4(b.Addr), port),
			BackendStats: st[id],
		})
	}
	return out
}

func (s DataplaneSource) name(sv *dataplane.Service) string {
	vip, proto := netip.AddrFrom4(sv.VIP), protoName(sv.Proto)
	if s.Name != nil {
		if n := s.Name(vip, proto, sv.Port); n != "" {
			return n
		}
	}
	return ServiceLabel(vip, sv.Port, proto)
}

func protoName(p uint8) string {
	switch p {
	case header.ProtoTCP:
		return "tcp"
	case header.ProtoUDP:
		return "udp"
	}
	return strconv.Itoa(int(p))
}

// Handler returns an http.Handler serving c, alone in its own registry, in
// the Prometheus exposition formats.
func Handler(c prometheus.Collector) (http.Handler, error) {
	reg := prometheus.NewRegistry()
	if err := reg.Register(c); err != nil {
		return nil, fmt.Errorf("metrics: %w", err)
	}
	return promhttp.HandlerFor(reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError}), nil
}

// Serve listens on addr and serves c at /metrics until ctx is done. It
// returns once listening fails or the server has shut down; a ctx ended
// is not an error.
func Serve(ctx context.Context, addr string, c prometheus.Collector) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("metrics: %w", err)
	}
	return ServeListener(ctx, ln, c)
}

// ServeListener is Serve on a listener already open; it closes ln.
func ServeListener(ctx context.Context, ln net.Listener, c prometheus.Collector) error {
	h, err := Handler(c)
	if err != nil {
		ln.Close()
		return err
	}
	mux := http.NewServeMux()
	mux.Handle("/metrics", h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	done := make(chan struct{})
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		case <-done:
		}
	}()
	err = srv.Serve(ln)
	close(done)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return fmt.Errorf("metrics: %w", err)
}
