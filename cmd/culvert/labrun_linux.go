package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/culvert-lb/culvert/appliance"
	"github.com/culvert-lb/culvert/bench/lab"
)

// labRun is one forwarding mode on a fresh namespace lab: the lab, the
// appliance daemon running in its namespace, and (ipip) the backends'
// decapsulators.
type labRun struct {
	mode    string
	lab     *lab.Lab
	dir     string
	daemon  *exec.Cmd
	decaps  []*exec.Cmd
	logBuf  *bytes.Buffer
	exe     string
	env     []string
	stopped bool
}

// startLab brings up a one-armed lab for mode and starts `exe run` in the
// appliance's namespace. env is added to the children's environment.
func startLab(ctx context.Context, mode, exe string, env []string) (*labRun, error) {
	return startLabWith(ctx, mode, lab.Options{}, exe, env, nil)
}

// startLabWith is startLab on a lab made with opt (DSR is set from mode):
// two-armed (lab.TwoArmed), the appliance runs on both its interfaces, the
// client side toward the router's uplink. edit, when not nil, changes the
// appliance's configuration before start.
func startLabWith(ctx context.Context, mode string, opt lab.Options, exe string, env []string, edit func(*lab.Lab, *appliance.Spec) error) (*labRun, error) {
	opt.DSR = mode != "nat"
	l, err := lab.Up(ctx, opt)
	if err != nil {
		return nil, err
	}
	r := &labRun{mode: mode, lab: l, exe: exe, env: env, logBuf: &bytes.Buffer{}}
	ok := false
	defer func() {
		if !ok {
			r.stop()
		}
	}()
	if r.dir, err = os.MkdirTemp("", "culvert-lab-"); err != nil {
		return nil, err
	}
	spec := appliance.Default(mode)
	if l.Topology == lab.TwoArmed {
		spec.Interfaces = []appliance.InterfaceSpec{
			{Name: l.ClientSide.Name, Queues: l.ClientSide.Queues, Role: appliance.RoleClient},
			{Name: l.ServerSide.Name, Queues: l.ServerSide.Queues, Role: appliance.RoleServer},
		}
	} else {
		spec.Interfaces = []appliance.InterfaceSpec{{Name: l.ServerSide.Name, Queues: l.ServerSide.Queues}}
	}
	// The router's address on the appliance's client side: the server
	// segment one-armed, the uplink two-armed.
	spec.Gateway = l.Gateway().Addr.Addr()
	if len(l.Backends) < len(spec.Services[0].Backends) {
		return nil, fmt.Errorf("lab has %d backends, the default config %d", len(l.Backends), len(spec.Services[0].Backends))
	}
	// TLS passthrough: the backends terminate HTTPS themselves.
	tls := spec.Services[0]
	tls.Name, tls.Port = "tls", 443
	tls.Backends = append([]appliance.BackendSpec(nil), tls.Backends...)
	for i := range tls.Backends {
		if mode == "nat" {
			tls.Backends[i].Port = 443
		}
	}
	spec.Services = append(spec.Services, tls)
	for si := range spec.Services {
		for i := range spec.Services[si].Backends {
			spec.Services[si].Backends[i].Address = l.Backends[i].Addr
		}
	}
	if edit != nil {
		if err := edit(l, &spec); err != nil {
			return nil, err
		}
	}
	cfg, err := appliance.Marshal(&spec)
	if err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(r.dir, "culvert.yaml"), cfg, 0o644); err != nil {
		return nil, err
	}
	if mode == "ipip" {
		for _, b := range l.Backends {
			c := b.Command(exe, "decap", "--iface", b.Links[0].Name, "--addr", b.Addr.String())
			c.Env = append(os.Environ(), env...)
			c.Stdout, c.Stderr = r.logBuf, r.logBuf
			if err := c.Start(); err != nil {
				return nil, fmt.Errorf("decap on %s: %w", b.Name, err)
			}
			r.decaps = append(r.decaps, c)
		}
	}
	r.daemon = l.Appliance.Command(exe, "run", "--config", filepath.Join(r.dir, "culvert.yaml"), "--stats-file", filepath.Join(r.dir, "stats.json"), "--control", filepath.Join(r.dir, "culvert.sock"), "--metrics", "127.0.0.1:9100")
	r.daemon.Env = append(os.Environ(), env...)
	r.daemon.Stdout, r.daemon.Stderr = r.logBuf, r.logBuf
	if err := r.daemon.Start(); err != nil {
		return nil, err
	}
	// Ready when the VIP serves a request (ARP resolved, maps filled).
	deadline := time.Now().Add(15 * time.Second)
	for {
		if _, err := r.get(ctx, "/"); err == nil {
			break
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("%s: the VIP did not answer within 15 s; appliance log:\n%s", mode, r.logBuf)
		}
		time.Sleep(100 * time.Millisecond)
	}
	ok = true
	return r, nil
}

// client returns an HTTP client that dials from the lab's client host, one
// new connection per request.
func (r *labRun) client() *http.Client {
	return &http.Client{
		Timeout: 5 * time.Second,
		Transport: &http.Transport{
			DialContext:       r.lab.Client.DialContext,
			DisableKeepAlives: true,
		},
	}
}

// get fetches path from the VIP's web service and returns the body.
func (r *labRun) get(ctx context.Context, path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, "GET", "http://"+r.lab.VIP.String()+path, nil)
	if err != nil {
		return nil, err
	}
	resp, err := r.client().Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != 200 {
		return nil, fmt.Errorf("status %s", resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// echo sends one datagram to the VIP's echo service and returns the reply.
func (r *labRun) echo(payload string) (string, error) {
	c, err := r.lab.Client.Dial("udp4", net.JoinHostPort(r.lab.VIP.String(), "7"))
	if err != nil {
		return "", err
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(2 * time.Second))
	if _, err := c.Write([]byte(payload)); err != nil {
		return "", err
	}
	buf := make([]byte, 2048)
	n, err := c.Read(buf)
	if err != nil {
		return "", err
	}
	return string(buf[:n]), nil
}

// labTraffic is what the client saw.
type labTraffic struct {
	HTTPSent, HTTPOK int
	UDPSent, UDPOK   int
	PerBackend       map[string]int
	Errors           []string
}

// traffic sends n HTTP requests (new connection each) and m echo datagrams.
func (r *labRun) traffic(ctx context.Context, n, m int) labTraffic {
	t := labTraffic{PerBackend: map[string]int{}}
	note := func(err error) {
		if len(t.Errors) < 5 {
			t.Errors = append(t.Errors, err.Error())
		}
	}
	for i := 0; i < n && ctx.Err() == nil; i++ {
		t.HTTPSent++
		body, err := r.get(ctx, "/")
		if err != nil {
			note(err)
			continue
		}
		name := strings.TrimSpace(strings.TrimPrefix(string(body), "backend "))
		t.PerBackend[name]++
		t.HTTPOK++
	}
	for i := 0; i < m && ctx.Err() == nil; i++ {
		t.UDPSent++
		want := fmt.Sprintf("ping %d", i)
		got, err := r.echo(want)
		if err != nil {
			note(err)
			continue
		}
		if strings.HasSuffix(got, ": "+want) {
			t.UDPOK++
		} else {
			note(fmt.Errorf("echo %q answered %q", want, got))
		}
	}
	return t
}

// stopDaemon stops the appliance with SIGTERM and returns its counters.
func (r *labRun) stopDaemon() (*RunStats, error) {
	if r.daemon == nil || r.stopped {
		return nil, errors.New("daemon not running")
	}
	r.stopped = true
	r.daemon.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- r.daemon.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			return nil, fmt.Errorf("appliance exited: %v; log:\n%s", err, r.logBuf)
		}
	case <-time.After(10 * time.Second):
		r.daemon.Process.Kill()
		<-done
		return nil, fmt.Errorf("appliance did not stop within 10 s")
	}
	b, err := os.ReadFile(filepath.Join(r.dir, "stats.json"))
	if err != nil {
		return nil, err
	}
	var s RunStats
	return &s, json.Unmarshal(b, &s)
}

// stop tears everything down; safe to call more than once.
func (r *labRun) stop() {
	if r.daemon != nil && r.daemon.Process != nil && !r.stopped {
		r.stopped = true
		r.daemon.Process.Kill()
		r.daemon.Wait()
	}
	for _, c := range r.decaps {
		if c.Process != nil {
			c.Process.Signal(syscall.SIGTERM)
			c.Wait()
		}
	}
	r.decaps = nil
	if r.lab != nil {
		r.lab.Down()
	}
	if r.dir != "" {
		os.RemoveAll(r.dir)
	}
}
