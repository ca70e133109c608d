package control

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

type fake struct {
	enabled bool
	weights map[netip.Addr]uint32
	reloads int
}

func (f *fake) Stats() any          { return map[string]int{"rx": 7} }
func (f *fake) Services() any       { return []string{"web"} }
func (f *fake) Flows(limit int) any { return []int{limit} }
func (f *fake) Backends() any       { return []string{"198.18.0.11:80"} }
func (f *fake) Health() any         { return []string{"up"} }
func (f *fake) VRRP() any           { return []string{"master"} }
func (f *fake) Sync() any           { return []string{"synced"} }
func (f *fake) SetWeight(a netip.Addr, port uint16, w uint32) error {
	if _, ok := f.weights[a]; !ok {
		return errors.New("no backend " + a.String())
	}
	f.weights[a] = w
	return nil
}
func (f *fake) Reload() error { f.reloads++; return nil }
func (f *fake) SetEnabled(a netip.Addr, port uint16, on bool) error {
	if _, ok := f.weights[a]; !ok {
		return errors.New("no backend " + a.String())
	}
	f.enabled = on
	return nil
}

func TestAPIOverSocket(t *testing.T) {
	f := &fake{weights: map[netip.Addr]uint32{netip.MustParseAddr("198.18.0.11"): 1}}
	sock := filepath.Join(t.TempDir(), "c.sock")
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go Serve(ctx, sock, f)
	c := NewClient(sock)
	var out []byte
	var err error
	for i := 0; i < 50; i++ {
		if out, err = c.Do("GET", "/v1/stats", nil); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil || !strings.Contains(string(out), `"rx": 7`) {
		t.Fatalf("stats: %v %s", err, out)
	}
	if out, err = c.Do("GET", "/v1/flows?limit=3", nil); err != nil || !strings.Contains(string(out), "3") {
		t.Fatalf("flows: %v %s", err, out)
	}
	if out, err = c.Do("GET", "/v1/backends", nil); err != nil || !strings.Contains(string(out), "198.18.0.11:80") {
		t.Fatalf("backends: %v %s", err, out)
	}
	if out, err = c.Do("GET", "/v1/health", nil); err != nil || !strings.Contains(string(out), "up") {
		t.Fatalf("health: %v %s", err, out)
	}
	if out, err = c.Do("GET", "/v1/vrrp", nil); err != nil || !strings.Contains(string(out), "master") {
		t.Fatalf("vrrp: %v %s", err, out)
	}
	if out, err = c.Do("GET", "/v1/sync", nil); err != nil || !strings.Contains(string(out), "synced") {
		t.Fatalf("sync: %v %s", err, out)
	}
	if _, err = c.Do("GET", "/v1/flows?limit=x", nil); err == nil || !strings.Contains(err.Error(), "limit") {
		t.Fatalf("bad limit: %v", err)
	}
	if _, err = c.Do("POST", "/v1/backends/weight", WeightRequest{Address: "198.18.0.11", Weight: 0}); err != nil || f.weights[netip.MustParseAddr("198.18.0.11")] != 0 {
		t.Fatalf("drain: %v %v", err, f.weights)
	}
	for _, bad := range []WeightRequest{{Address: "nope"}, {Address: "198.18.0.11", Weight: 70000}, {Address: "198.18.0.99"}} {
		if _, err = c.Do("POST", "/v1/backends/weight", bad); err == nil {
			t.Fatalf("%+v accepted", bad)
		}
	}
	if _, err = c.Do("POST", "/v1/backends/enabled", EnabledRequest{Address: "198.18.0.11", Enabled: true}); err != nil || !f.enabled {
		t.Fatalf("enable: %v", err)
	}
	if _, err = c.Do("POST", "/v1/backends/enabled", EnabledRequest{Address: "198.18.0.99"}); err == nil {
		t.Fatal("enable of an unknown backend accepted")
	}
	if _, err = c.Do("POST", "/v1/reload", nil); err != nil || f.reloads != 1 {
		t.Fatalf("reload: %v %d", err, f.reloads)
	}
	if _, err = c.Do("GET", "/v1/nothing", nil); err == nil {
		t.Fatal("unknown path answered")
	}
}
