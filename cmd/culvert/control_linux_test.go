package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/appliance/control"
)

// TestLabControlDrain: through the control socket, stats and flows show
// the running appliance; draining a backend keeps its existing connection
// working and sends it no new ones.
func TestLabControlDrain(t *testing.T) {
	r := labForTest(t, "nat")
	c := control.NewClient(filepath.Join(r.dir, "culvert.sock"))

	// A keep-alive connection that landed on b0.
	url := "http://" + r.lab.VIP.String() + "/"
	get := func(hc *http.Client) (string, error) {
		resp, err := hc.Get(url)
		if err != nil {
			return "", err
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		return strings.TrimSpace(strings.TrimPrefix(string(b), "backend ")), err
	}
	var onB0 *http.Client
	for i := 0; i < 50 && onB0 == nil; i++ {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: r.lab.Client.DialContext, MaxIdleConnsPerHost: 1}}
		if name, err := get(hc); err == nil && name == "b0" {
			onB0 = hc
		}
	}
	if onB0 == nil {
		t.Fatal("no connection landed on b0 in 50 tries")
	}

	out, err := c.Do("GET", "/v1/stats", nil)
	if err != nil {
		t.Fatal(err)
	}
	var st RunStats
	if err := json.Unmarshal(out, &st); err != nil || st.Dataplane.NewFlows == 0 || st.LiveFlows == 0 {
		t.Fatalf("stats: %v %s", err, out)
	}
	if out, err = c.Do("GET", "/v1/flows?limit=5", nil); err != nil || !strings.Contains(string(out), `"state"`) {
		t.Fatalf("flows: %v %s", err, out)
	}

	// Prometheus metrics from the daemon's namespace.
	mc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: r.lab.Appliance.DialContext}}
	resp, err := mc.Get("http://127.0.0.1:9100/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{"culvert_queue_rx_packets_total", `culvert_service_new_flows_total{port="80",proto="tcp",service="web",vip="198.18.1.1"}`,
		"culvert_backend_active_flows", "culvert_conntrack_live", `culvert_queue_drops_total{queue="0",reason="no-flow"}`} {
		if !strings.Contains(string(body), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}

	b0 := r.lab.Backends[0].Addr
	if _, err := c.Do("POST", "/v1/backends/enabled", control.EnabledRequest{Address: b0.String(), Enabled: false}); err != nil {
		t.Fatal(err)
	}
	// The existing connection still reaches b0.
	for i := 0; i < 5; i++ {
		if name, err := get(onB0); err != nil || name != "b0" {
			t.Fatalf("existing connection after drain: %q %v", name, err)
		}
	}
	// New connections never do.
	tr := r.traffic(context.Background(), 100, 0)
	if tr.HTTPOK != 100 || tr.PerBackend["b0"] != 0 {
		t.Fatalf("after drain: %d/100 ok, per backend %v", tr.HTTPOK, tr.PerBackend)
	}
	// Enabled again, with its weight intact, it takes new connections.
	if _, err := c.Do("POST", "/v1/backends/enabled", control.EnabledRequest{Address: b0.String(), Enabled: true}); err != nil {
		t.Fatal(err)
	}
	if tr := r.traffic(context.Background(), 100, 0); tr.HTTPOK != 100 || tr.PerBackend["b0"] == 0 {
		t.Fatalf("after enable: %d/100 ok, per backend %v", tr.HTTPOK, tr.PerBackend)
	}
	// Bad requests get clear errors.
	if _, err := c.Do("POST", "/v1/backends/weight", control.WeightRequest{Address: "198.18.0.250", Weight: 1}); err == nil || !strings.Contains(err.Error(), "no backend") {
		t.Fatalf("unknown backend: %v", err)
	}
	if _, err := c.Do("GET", "/v1/flows?limit=0", nil); err == nil {
		t.Fatal("limit=0 accepted")
	}
}
