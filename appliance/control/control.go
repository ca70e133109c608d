// Package control is the appliance's local control API: JSON over HTTP on
// a Unix socket (mode 0600, so only root uses it), served by the daemon and
// used by `culvert show`, `culvert set` and `culvert reload`. The operator
// console will use the same API.
//
//	GET  /v1/stats                       dataplane counters, drop reasons, table occupancy
//	GET  /v1/services                    the configuration in force
//	GET  /v1/flows?limit=N               connection table entries (default 100)
//	GET  /v1/backends                    per backend: services, weight, health, active flows, counters
//	GET  /v1/health                      per checked backend: state, streaks, last error
//	POST /v1/backends/weight             {"address","port","weight"}
//	POST /v1/backends/enabled            {"address","port","enabled"}: false drains, keeping the weight
//	POST /v1/reload                      re-read the configuration file
//	GET  /v1/vrrp                        HA: each VRRP group's state, priority, master, counters
//	GET  /v1/sync                        HA: connection sync state, lag, backlog, counters
//
// Errors are {"error": "..."} with a 4xx or 5xx status.
package control

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"strconv"
	"time"
)

// DefaultSocket is where the daemon listens unless told otherwise.
const DefaultSocket = "/run/culvert/culvert.sock"

// Backend is what the API needs from the running appliance.
type Backend interface {
	Stats() any
	Services() any
	Flows(limit int) any
	Backends() any
	Health() any
	VRRP() any
	Sync() any
	SetWeight(addr netip.Addr, port uint16, weight uint32) error
	SetEnabled(addr netip.Addr, port uint16, enabled bool) error
	Reload() error
}

// EnabledRequest is the body of POST /v1/backends/enabled.
type EnabledRequest struct {
	Address string `json:"address"`
	Port    uint16 `json:"port"`
	Enabled bool   `json:"enabled"`
}

// WeightRequest is the body of POST /v1/backends/weight.
type WeightRequest struct {
	Address string `json:"address"`
	Port    uint16 `json:"port"`
	Weight  uint32 `json:"weight"`
}

// Handler returns the API's HTTP handler.
func Handler(b Backend) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/stats", func(w http.ResponseWriter, r *http.Request) { reply(w, b.Stats(), nil) })
	mux.HandleFunc("GET /v1/services", func(w http.ResponseWriter, r *http.Request) { reply(w, b.Services(), nil) })
	mux.HandleFunc("GET /v1/backends", func(w http.ResponseWriter, r *http.Request) { reply(w, b.Backends(), nil) })
	mux.HandleFunc("GET /v1/health", func(w http.ResponseWriter, r *http.Request) { reply(w, b.Health(), nil) })
	mux.HandleFunc("GET /v1/vrrp", func(w http.ResponseWriter, r *http.Request) { reply(w, b.VRRP(), nil) })
	mux.HandleFunc("GET /v1/sync", func(w http.ResponseWriter, r *http.Request) { reply(w, b.Sync(), nil) })
	mux.HandleFunc("GET /v1/flows", func(w http.ResponseWriter, r *http.Request) {
		limit := 100
		if s := r.URL.Query().Get("limit"); s != "" {
			n, err := strconv.Atoi(s)
			if err != nil || n < 1 || n > 1_000_000 {
				fail(w, http.StatusBadRequest, errors.New("limit: want 1 to 1000000"))
				return
			}
			limit = n
		}
		reply(w, b.Flows(limit), nil)
	})
	mux.HandleFunc("POST /v1/backends/weight", func(w http.ResponseWriter, r *http.Request) {
		var req WeightRequest
		a, ok := decodeBackend(w, r, &req, &req.Address)
		if !ok {
			return
		}
		if req.Weight > 65535 {
			fail(w, http.StatusBadRequest, errors.New("weight: want 0 to 65535"))
			return
		}
		reply(w, map[string]string{"result": "applied"}, b.SetWeight(a, req.Port, req.Weight))
	})
	mux.HandleFunc("POST /v1/backends/enabled", func(w http.ResponseWriter, r *http.Request) {
		var req EnabledRequest
		if a, ok := decodeBackend(w, r, &req, &req.Address); ok {
			reply(w, map[string]string{"result": "applied"}, b.SetEnabled(a, req.Port, req.Enabled))
		}
	})
	mux.HandleFunc("POST /v1/reload", func(w http.ResponseWriter, r *http.Request) {
		reply(w, map[string]string{"result": "applied"}, b.Reload())
	})
	return mux
}

// decodeBackend decodes a JSON body into req and parses the backend
// address it names (*addr, a field of req); on error it answers 400 and
// reports false.
func decodeBackend(w http.ResponseWriter, r *http.Request, req any, addr *string) (netip.Addr, bool) {
	if err := json.NewDecoder(io.LimitReader(r.Body, 1<<16)).Decode(req); err != nil {
		fail(w, http.StatusBadRequest, fmt.Errorf("body: %w", err))
		return netip.Addr{}, false
	}
	a, err := netip.ParseAddr(*addr)
	if err != nil {
		fail(w, http.StatusBadRequest, fmt.Errorf("address: %q is not an IP address", *addr))
		return netip.Addr{}, false
	}
	return a, true
}

func reply(w http.ResponseWriter, v any, err error) {
	if err != nil {
		fail(w, http.StatusUnprocessableEntity, err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	enc.Encode(v)
}

func fail(w http.ResponseWriter, code int, err error) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	json.NewEncoder(w).Encode(map[string]string{"error": err.Error()})
}

// Serve listens on the Unix socket at path (replacing a stale one, mode
// 0600) and serves the API until ctx ends.
func Serve(ctx context.Context, path string, b Backend) error {
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return fmt.Errorf("control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return err
	}
	srv := &http.Server{Handler: Handler(b), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		<-ctx.Done()
		srv.Close()
		os.Remove(path)
	}()
	if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// Client talks to the API over the Unix socket.
type Client struct{ hc *http.Client }

// NewClient returns a client for the socket at path.
func NewClient(path string) *Client {
	return &Client{hc: &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", path)
		}},
	}}
}

// Do sends a request and returns the JSON body, or the API's error.
func (c *Client) Do(method, path string, body any) ([]byte, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, "http://culvert"+path, rd)
	if err != nil {
		return nil, err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return nil, err
	}
	if resp.StatusCode >= 400 {
		var e struct{ Error string }
		if json.Unmarshal(out, &e) == nil && e.Error != "" {
			return nil, errors.New(e.Error)
		}
		return nil, fmt.Errorf("%s", resp.Status)
	}
	return out, nil
}
