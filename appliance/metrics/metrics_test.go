package metrics

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/culvert-lb/culvert/conntrack"
	"github.com/culvert-lb/culvert/dataplane"
	"github.com/culvert-lb/culvert/dataplane/sched"
	"github.com/culvert-lb/culvert/internal/header"
)

// fakeSource returns fixed values.
type fakeSource struct {
	queues   []dataplane.Stats
	ct       conntrack.Stats
	services []Service
	backends []Backend
}

func (f *fakeSource) Queues() []dataplane.Stats  { return f.queues }
func (f *fakeSource) Conntrack() conntrack.Stats { return f.ct }
func (f *fakeSource) Services() []Service        { return f.services }
func (f *fakeSource) Backends() []Backend        { return f.backends }

var (
	be1 = netip.MustParseAddrPort("198.51.100.11:8080")
	be2 = netip.MustParseAddrPort("198.51.100.12:8080")
)

func fake() *fakeSource {
	q0 := dataplane.Stats{RX: 10, TX: 7, RXBytes: 1000, TXBytes: 700, PortClashes: 2}
	q0.Drops[dataplane.DropNoFlow] = 2
	q0.Passes[dataplane.PassNotIPv4] = 1
	q1 := dataplane.Stats{RX: 5, TX: 5, RXBytes: 500, TXBytes: 520}
	q1.Drops[dataplane.DropTableFull] = 3
	return &fakeSource{
		queues: []dataplane.Stats{q0, q1},
		ct:     conntrack.Stats{Live: 4, Capacity: 1024, Refused: 3, Inserted: 9, Expired: 5, Exists: 77},
		services: []Service{
			{Name: "web", VIP: netip.MustParseAddr("198.51.100.1"), Port: 80, Proto: "tcp", ServiceStats: dataplane.ServiceStats{Packets: 12, Bytes: 1220, NewFlows: 6}},
			{VIP: netip.MustParseAddr("198.51.100.1"), Port: 53, Proto: "udp", ServiceStats: dataplane.ServiceStats{Packets: 1, Bytes: 60, NewFlows: 1}},
		},
		backends: []Backend{
			{Service: "web", Addr: be1, BackendStats: dataplane.BackendStats{Packets: 8, Bytes: 800, NewFlows: 4, Active: 3}},
			{Service: "web", Addr: be2, BackendStats: dataplane.BackendStats{Packets: 4, Bytes: 420, NewFlows: 2, Active: 1}},
		},
	}
}

func health(a netip.AddrPort) int {
	if a == be2 {
		return 0
	}
	return 1
}

func TestCollector(t *testing.T) {
	c := New(fake(), health)
	for _, tc := range []struct {
		name  string
		names []string
		want  string
	}{
		{"queues", []string{"culvert_queue_rx_packets_total", "culvert_queue_tx_bytes_total", "culvert_queue_snat_port_clashes_total"}, `
# HELP culvert_queue_rx_packets_total Frames received on the queue.
# TYPE culvert_queue_rx_packets_total counter
culvert_queue_rx_packets_total{queue="0"} 10
culvert_queue_rx_packets_total{queue="1"} 5
# HELP culvert_queue_snat_port_clashes_total SNAT ports passed over for a new flow because a flow imported from the HA peer held the tuple.
# TYPE culvert_queue_snat_port_clashes_total counter
culvert_queue_snat_port_clashes_total{queue="0"} 2
culvert_queue_snat_port_clashes_total{queue="1"} 0
# HELP culvert_queue_tx_bytes_total Bytes transmitted by the queue's worker.
# TYPE culvert_queue_tx_bytes_total counter
culvert_queue_tx_bytes_total{queue="0"} 700
culvert_queue_tx_bytes_total{queue="1"} 520
`},
		{"conntrack", []string{"culvert_conntrack_live", "culvert_conntrack_capacity", "culvert_conntrack_refused_total", "culvert_conntrack_inserted_total", "culvert_conntrack_expired_total"}, `
# HELP culvert_conntrack_capacity Flows the connection table can hold.
# TYPE culvert_conntrack_capacity gauge
culvert_conntrack_capacity 1024
# HELP culvert_conntrack_expired_total Flows removed from the connection table on timeout.
# TYPE culvert_conntrack_expired_total counter
culvert_conntrack_expired_total 5
# HELP culvert_conntrack_inserted_total Flows inserted into the connection table.
# TYPE culvert_conntrack_inserted_total counter
culvert_conntrack_inserted_total 9
# HELP culvert_conntrack_live Flows in the connection table.
# TYPE culvert_conntrack_live gauge
culvert_conntrack_live 4
# HELP culvert_conntrack_refused_total Flows refused because the connection table was full.
# TYPE culvert_conntrack_refused_total counter
culvert_conntrack_refused_total 3
`},
		{"services", []string{"culvert_service_packets_total", "culvert_service_new_flows_total"}, `
# HELP culvert_service_new_flows_total Flows created for the service.
# TYPE culvert_service_new_flows_total counter
culvert_service_new_flows_total{port="53",proto="udp",service="198.51.100.1:53/udp",vip="198.51.100.1"} 1
culvert_service_new_flows_total{port="80",proto="tcp",service="web",vip="198.51.100.1"} 6
# HELP culvert_service_packets_total Frames of the service's flows transmitted, both directions in nat.
# TYPE culvert_service_packets_total counter
culvert_service_packets_total{port="53",proto="udp",service="198.51.100.1:53/udp",vip="198.51.100.1"} 1
culvert_service_packets_total{port="80",proto="tcp",service="web",vip="198.51.100.1"} 12
`},
		{"backends", []string{"culvert_backend_bytes_total", "culvert_backend_active_flows", "culvert_backend_up"}, `
# HELP culvert_backend_active_flows Flows in the connection table that point at the backend.
# TYPE culvert_backend_active_flows gauge
culvert_backend_active_flows{backend="198.51.100.11:8080"} 3
culvert_backend_active_flows{backend="198.51.100.12:8080"} 1
# HELP culvert_backend_bytes_total Bytes of the backend's flows transmitted, as sent.
# TYPE culvert_backend_bytes_total counter
culvert_backend_bytes_total{backend="198.51.100.11:8080",service="web"} 800
culvert_backend_bytes_total{backend="198.51.100.12:8080",service="web"} 420
# HELP culvert_backend_up Backend health: 1 up or not checked yet, 0 down.
# TYPE culvert_backend_up gauge
culvert_backend_up{backend="198.51.100.11:8080"} 1
culvert_backend_up{backend="198.51.100.12:8080"} 0
`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := testutil.CollectAndCompare(c, strings.NewReader(tc.want), tc.names...); err != nil {
				t.Error(err)
			}
		})
	}
}

// TestCollectorReasons: every drop and pass reason is exported per queue,
// zero or not, so that rate() works from the first scrape.
func TestCollectorReasons(t *testing.T) {
	c := New(fake(), nil)
	reg := prometheus.NewPedanticRegistry()
	reg.MustRegister(c)
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]float64{}
	series := map[string]int{}
	for _, mf := range mfs {
		series[mf.GetName()] = len(mf.GetMetric())
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += "," + l.GetName() + "=" + l.GetValue()
			}
			got[key] = m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	for _, tc := range []struct {
		name string
		got  int
		want int
	}{
		{"drops", series["culvert_queue_drops_total"], 2 * (int(dataplane.NumDropReasons) - 1)},
		{"passes", series["culvert_queue_passes_total"], 2 * (int(dataplane.NumPassReasons) - 1)},
		{"no health func, no culvert_backend_up", series["culvert_backend_up"], 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("%d series, want %d", tc.got, tc.want)
			}
		})
	}
	for key, want := range map[string]float64{
		"culvert_queue_drops_total,queue=0,reason=" + dataplane.DropNoFlow.String():    2,
		"culvert_queue_drops_total,queue=1,reason=" + dataplane.DropTableFull.String(): 3,
		"culvert_queue_drops_total,queue=1,reason=" + dataplane.DropNoFlow.String():    0,
		"culvert_queue_passes_total,queue=0,reason=" + dataplane.PassNotIPv4.String():  1,
	} {
		if v, ok := got[key]; !ok || v != want {
			t.Errorf("%s = %v (present %v), want %v", key, v, ok, want)
		}
	}
}

// TestCollectorMergesDuplicateLabels: two backends that export the same
// label set (one address and port under two backend IDs) are summed, not
// reported twice, which would fail the scrape.
func TestCollectorMergesDuplicateLabels(t *testing.T) {
	src := fake()
	src.backends = append(src.backends, Backend{Service: "web", Addr: be1, BackendStats: dataplane.BackendStats{Packets: 1, Active: 2}})
	c := New(src, health)
	if err := testutil.GatherAndCompare(registry(t, c), strings.NewReader(`
# HELP culvert_backend_active_flows Flows in the connection table that point at the backend.
# TYPE culvert_backend_active_flows gauge
culvert_backend_active_flows{backend="198.51.100.11:8080"} 5
culvert_backend_active_flows{backend="198.51.100.12:8080"} 1
# HELP culvert_backend_packets_total Frames of the backend's flows transmitted, both directions in nat.
# TYPE culvert_backend_packets_total counter
culvert_backend_packets_total{backend="198.51.100.11:8080",service="web"} 9
culvert_backend_packets_total{backend="198.51.100.12:8080",service="web"} 4
`), "culvert_backend_active_flows", "culvert_backend_packets_total"); err != nil {
		t.Error(err)
	}
}

func registry(t *testing.T, c prometheus.Collector) *prometheus.Registry {
	t.Helper()
	reg := prometheus.NewPedanticRegistry()
	if err := reg.Register(c); err != nil {
		t.Fatal(err)
	}
	return reg
}

// TestDataplaneSource: a real dataplane's configuration becomes labelled
// services and backends: removed IDs are left out, a backend without its
// own port takes its service's, and one listed by two services names both.
func TestDataplaneSource(t *testing.T) {
	dp, err := dataplane.New(dataplane.Options{Workers: 2, MaxFlows: 1024})
	if err != nil {
		t.Fatal(err)
	}
	vip := [4]byte{198, 51, 100, 1}
	cfg := &dataplane.Config{
		Backends: []dataplane.Backend{
			{Addr: [4]byte{198, 51, 100, 11}, Weight: 1},
			{Addr: [4]byte{198, 51, 100, 12}, Port: 8080, Weight: 1},
			{Addr: [4]byte{198, 51, 100, 13}, Removed: true},
		},
		Services: []dataplane.Service{
			{VIP: vip, Proto: header.ProtoTCP, Port: 80, Mode: dataplane.ModeDSR, Scheduler: sched.KindWRR, Backends: []uint32{0}},
			{VIP: vip, Proto: header.ProtoUDP, Port: 53, Mode: dataplane.ModeNAT, Scheduler: sched.KindWRR, Backends: []uint32{0, 1}},
			{VIP: vip, Proto: header.ProtoTCP, Port: 443, Removed: true},
		},
		LocalAddrs: [][4]byte{{198, 51, 100, 2}},
	}
	if err := dp.Apply(cfg); err != nil {
		t.Fatal(err)
	}
	src := DataplaneSource{DP: dp, Name: func(v netip.Addr, proto string, port uint16) string {
		if port == 80 && proto == "tcp" {
			return "web"
		}
		return ""
	}}
	svcs := src.Services()
	if len(svcs) != 2 || svcs[0].Name != "web" || svcs[1].Name != "198.51.100.1:53/udp" || svcs[1].Proto != "udp" {
		t.Errorf("services %+v", svcs)
	}
	bes := src.Backends()
	want := []Backend{
		{Service: "198.51.100.1:53/udp,web", Addr: netip.MustParseAddrPort("198.51.100.11:80")},
		{Service: "198.51.100.1:53/udp", Addr: be2},
	}
	if len(bes) != len(want) {
		t.Fatalf("backends %+v, want %+v", bes, want)
	}
	for i := range want {
		if bes[i] != want[i] {
			t.Errorf("backend %d: %+v, want %+v", i, bes[i], want[i])
		}
	}
	if q := src.Queues(); len(q) != 2 {
		t.Errorf("%d queues, want 2", len(q))
	}
	if ct := src.Conntrack(); ct.Capacity < 1024 {
		t.Errorf("conntrack capacity %d", ct.Capacity)
	}
	// The whole collector over it passes the pedantic registry's checks.
	if _, err := registry(t, New(src, health)).Gather(); err != nil {
		t.Error(err)
	}
}

// TestServe: /metrics answers over HTTP and the server stops with ctx.
func TestServe(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- ServeListener(ctx, ln, New(fake(), health)) }()
	resp, err := http.Get("http://" + ln.Addr().String() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !strings.Contains(string(body), `culvert_service_packets_total{port="80",proto="tcp",service="web",vip="198.51.100.1"} 12`) {
		t.Errorf("status %d, body:\n%s", resp.StatusCode, body)
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("serve: %v", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("server did not stop")
	}
}
