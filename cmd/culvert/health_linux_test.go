package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/appliance"
	"github.com/culvert-lb/culvert/appliance/control"
	"github.com/culvert-lb/culvert/appliance/health"
	"github.com/culvert-lb/culvert/bench/lab"
)

// TestLabHealth: killing one backend's web server takes it out of new-flow
// selection within interval x fall (plus a probe timeout), after which
// every new request succeeds; restarting it brings it back within
// interval x rise.
func TestLabHealth(t *testing.T) {
	const interval, timeout = 200 * time.Millisecond, 150 * time.Millisecond
	const rise, fall = 2, 2
	stops := map[string]func(){}
	r := labForTestWith(t, "nat", lab.Options{}, func(l *lab.Lab, s *appliance.Spec) error {
		for _, b := range l.Backends {
			stop, err := b.ServeHTTP(":8080", b.Role)
			if err != nil {
				return err
			}
			stops[b.Role] = stop
		}
		web := &s.Services[0]
		for i := range web.Backends {
			web.Backends[i].Port = 8080
		}
		web.HealthCheck = &health.Spec{Kind: health.KindHTTP, Interval: interval, Timeout: timeout, Rise: rise, Fall: fall}
		return nil
	})
	t.Cleanup(func() {
		for _, stop := range stops {
			stop()
		}
	})
	if tr := r.traffic(context.Background(), 60, 0); tr.HTTPOK != 60 || tr.PerBackend["b0"] == 0 {
		t.Fatalf("before: %d/60 %v %v", tr.HTTPOK, tr.PerBackend, tr.Errors)
	}

	killed := time.Now()
	stops["b0"]()
	// Out within interval x fall (+ jitter 10% and one timeout): poll
	// until 20 requests in a row succeed and none reaches b0.
	deadline := killed.Add(time.Duration(fall)*interval*11/10 + timeout + 2*time.Second)
	var out time.Duration
	for time.Now().Before(deadline) {
		tr := r.traffic(context.Background(), 20, 0)
		if tr.HTTPOK == 20 && tr.PerBackend["b0"] == 0 {
			out = time.Since(killed)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if out == 0 {
		t.Fatal("b0 was not taken out")
	}
	budget := time.Duration(fall)*interval*11/10 + timeout
	t.Logf("b0 out of selection %v after its server died (interval x fall = %v, + jitter and timeout = %v)", out.Round(time.Millisecond), time.Duration(fall)*interval, budget)
	if out > budget+500*time.Millisecond {
		t.Errorf("took %v, budget %v", out, budget)
	}
	if tr := r.traffic(context.Background(), 100, 0); tr.HTTPOK != 100 || tr.PerBackend["b0"] != 0 {
		t.Fatalf("after b0 went down: %d/100 ok, %v, %v", tr.HTTPOK, tr.PerBackend, tr.Errors)
	}
	// The operator sees it: culvert show health / show backends.
	c := control.NewClient(filepath.Join(r.dir, "culvert.sock"))
	b0 := r.lab.Backends[0].Addr.String() + ":8080"
	shown, err := c.Do("GET", "/v1/health", nil)
	if err != nil || !strings.Contains(string(shown), `"backend": "`+b0+`"`) || !strings.Contains(string(shown), `"state": "down"`) {
		t.Fatalf("show health: %v %s", err, shown)
	}
	if shown, err = c.Do("GET", "/v1/backends", nil); err != nil || !strings.Contains(string(shown), `"health": "down"`) {
		t.Fatalf("show backends: %v %s", err, shown)
	}

	// Back within interval x rise.
	stop, err := r.lab.Backends[0].ServeHTTP(":8080", "b0")
	if err != nil {
		t.Fatal(err)
	}
	stops["b0"] = stop
	restarted := time.Now()
	var back time.Duration
	for time.Since(restarted) < 5*time.Second {
		if tr := r.traffic(context.Background(), 20, 0); tr.PerBackend["b0"] > 0 {
			back = time.Since(restarted)
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if back == 0 {
		t.Fatal("b0 did not come back")
	}
	t.Logf("b0 back in selection %v after restart (interval x rise = %v)", back.Round(time.Millisecond), time.Duration(rise)*interval)
	if back > time.Duration(rise)*interval*11/10+timeout+500*time.Millisecond {
		t.Errorf("came back after %v", back)
	}
}
