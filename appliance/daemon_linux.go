package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"sync"
	"time"

	"github.com/culvert-lb/culvert/dataplane"
	"github.com/culvert-lb/culvert/internal/header"
	"github.com/culvert-lb/culvert/nic"
)

// Daemon is a running appliance: AF_XDP queues on one interface, the
// steering program, one pinned worker per queue, the sweeper, and a
// neighbour watcher that keeps next-hop MACs fresh.
type Daemon struct {
	log     *slog.Logger
	spec    *Spec
	dp      *dataplane.Dataplane
	steer   *nic.Steering
	queues  []*nic.XDP
	builder *Builder
	links   Links
	neigh   neighbors
	macs    map[netip.Addr]header.MAC

	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   chan error
}

// Start brings the appliance up on the spec's interface. Only one-armed
// operation (one interface) is supported so far.
func Start(ctx context.Context, spec *Spec, log *slog.Logger) (*Daemon, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if len(spec.Interfaces) != 1 {
		return nil, errors.New("appliance: exactly one interface is supported (one-armed); two-armed is not built yet")
	}
	ifc := spec.Interfaces[0]
	nq := max(ifc.Queues, 1)
	if spec.MTU == 0 {
		// IP-in-IP needs the real link MTU to know what fits.
		mtu, err := linkMTU(ifc.Name)
		if err != nil {
			return nil, err
		}
		s := *spec
		s.MTU = mtu
		spec = &s
	}
	d := &Daemon{log: log.With("component", "appliance"), spec: spec, builder: NewBuilder(), macs: map[netip.Addr]header.MAC{}, errs: make(chan error, nq+2)}
	ok := false
	defer func() {
		if !ok {
			d.close()
		}
	}()
	self, err := linkMAC(ifc.Name)
	if err != nil {
		return nil, err
	}
	d.links = Links{Self: self, Backend: d.mac}
	maxFlows := spec.MaxFlows
	if maxFlows == 0 {
		maxFlows = 1 << 20
	}
	if d.dp, err = dataplane.New(dataplane.Options{Workers: nq, MaxFlows: maxFlows}); err != nil {
		return nil, err
	}
	if d.steer, err = nic.NewSteering(ifc.Name, nq); err != nil {
		return nil, fmt.Errorf("steering on %s: %w", ifc.Name, err)
	}
	var workers []*dataplane.Worker
	for q := 0; q < nq; q++ {
		x, err := nic.OpenXDP(nic.XDPConfig{Iface: ifc.Name, QueueID: q, ZeroCopy: true})
		if err != nil {
			return nil, fmt.Errorf("%s queue %d: %w", ifc.Name, q, err)
		}
		d.queues = append(d.queues, x)
		if err := d.steer.SetSocket(q, x.FD()); err != nil {
			return nil, err
		}
		w, err := d.dp.NewWorker(q, x)
		if err != nil {
			return nil, err
		}
		workers = append(workers, w)
		d.log.Info("queue open", "iface", ifc.Name, "queue", q, "mode", x.Mode())
	}
	if err := d.apply(); err != nil {
		return nil, err
	}
	d.log.Info("steering attached", "iface", ifc.Name, "mode", d.steer.Mode())

	ctx, d.cancel = context.WithCancel(ctx)
	ncpu := runtime.NumCPU()
	for i, w := range workers {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			if err := w.Run(ctx, dataplane.RunOptions{CPU: i % ncpu}); err != nil && !errors.Is(err, context.Canceled) {
				d.errs <- fmt.Errorf("worker %d: %w", i, err)
			}
		}()
	}
	d.wg.Add(2)
	go func() { defer d.wg.Done(); d.dp.RunSweeper(ctx, 0) }()
	go func() { defer d.wg.Done(); d.watchNeighbors(ctx) }()
	ok = true
	return d, nil
}

// mac is Links.Backend: the last MAC seen for a backend's next hop.
func (d *Daemon) mac(a netip.Addr) header.MAC { return d.macs[a] }

// resolve refreshes every next-hop MAC; it reports whether any changed.
func (d *Daemon) resolve() bool {
	changed := false
	want := []netip.Addr{}
	if d.spec.Gateway.IsValid() {
		want = append(want, d.spec.Gateway)
	}
	for _, s := range d.spec.Services {
		for _, b := range s.Backends {
			want = append(want, b.Address)
		}
	}
	for _, a := range want {
		m, ok := d.neigh.lookup(a)
		if !ok {
			if _, had := d.macs[a]; had {
				d.log.Warn("neighbour lost", "addr", a)
				delete(d.macs, a)
				changed = true
			}
			continue
		}
		if d.macs[a] != m {
			d.log.Info("neighbour resolved", "addr", a, "mac", fmt.Sprintf("%x", m[:]))
			d.macs[a] = m
			changed = true
		}
	}
	return changed
}

// apply builds the dataplane config from the spec and current MACs and
// swaps it in, with the steering maps.
func (d *Daemon) apply() error {
	d.resolve()
	d.links.Gateway = d.macs[d.spec.Gateway]
	cfg, err := d.builder.Build(d.spec, d.links)
	if err != nil {
		return err
	}
	if err := d.dp.Apply(cfg); err != nil {
		return err
	}
	var vips [][4]byte
	var svcs []nic.SteerService
	seen := map[netip.Addr]bool{}
	for _, s := range d.spec.Services {
		if !seen[s.VIP] {
			vips = append(vips, s.VIP.As4())
			seen[s.VIP] = true
		}
		proto, _ := parseProto(s.Protocol)
		svcs = append(svcs, nic.SteerService{Addr: s.VIP.As4(), Port: s.Port, Proto: proto})
	}
	var locals [][4]byte
	for _, a := range d.spec.LocalAddrs {
		locals = append(locals, a.As4())
	}
	return d.steer.Update(vips, svcs, locals)
}

func (d *Daemon) watchNeighbors(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if d.resolve() {
				if err := d.apply(); err != nil {
					d.log.Error("apply after neighbour change", "err", err)
				}
			}
		}
	}
}

// Dataplane returns the running dataplane (counters, connection table).
func (d *Daemon) Dataplane() *dataplane.Dataplane { return d.dp }

// Steering returns the steering program's handle.
func (d *Daemon) Steering() *nic.Steering { return d.steer }

// Wait blocks until ctx ends or a worker fails.
func (d *Daemon) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-d.errs:
		return err
	}
}

// Close stops the workers, closes the sockets and detaches the program.
func (d *Daemon) Close() error {
	d.close()
	return nil
}

func (d *Daemon) close() {
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
	for _, q := range d.queues {
		q.Close()
	}
	if d.steer != nil {
		d.steer.Close()
	}
}
