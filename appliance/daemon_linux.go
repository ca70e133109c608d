package appliance

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"runtime"
	"strings"
	"sync"
	"time"

	"github.com/vishvananda/netlink"

	"github.com/culvert-lb/culvert/appliance/health"
	"github.com/culvert-lb/culvert/conntrack"
	"github.com/culvert-lb/culvert/dataplane"
	"github.com/culvert-lb/culvert/internal/header"
	"github.com/culvert-lb/culvert/nic"
)

// Daemon is a running appliance: on each dataplane interface (one
// one-armed, two two-armed) the steering program and one AF_XDP queue per
// NIC queue; one pinned worker per queue index, polling queue i of every
// interface; the sweeper; and a neighbour watcher that keeps next-hop MACs,
// and the interface each next hop is on, fresh.
type Daemon struct {
	log     *slog.Logger
	spec    *Spec
	dp      *dataplane.Dataplane
	ifaces  []*dataplaneIface // in Spec.Interfaces order: index = dataplane link
	byIndex map[int]uint8     // kernel interface index -> dataplane link
	client  uint8             // link toward clients
	builder *Builder
	links   Links
	neigh   neighbors
	applyMu sync.Mutex // serialises spec changes, resolve and apply
	checker *health.Checker
	down    map[netip.AddrPort]bool // backends failing their health check (under applyMu)
	hops    map[netip.Addr]nextHop  // resolved next hops of the gateway and the backends
	offside map[netip.Addr]bool     // addresses routed out of no usable dataplane interface (logged once)
	// owned, in an HA pair, holds the VIPs and local addresses of the VRRP
	// groups this node is master of (under applyMu); nil without HA: all.
	owned map[netip.Addr]bool
	ha    *haState // nil without HA

	cancel context.CancelFunc
	wg     sync.WaitGroup
	errs   chan error
}

// dataplaneIface is one interface the dataplane runs on.
type dataplaneIface struct {
	name   string
	index  int // kernel interface index
	mac    header.MAC
	mtu    int
	steer  *nic.Steering
	queues []*nic.XDP
}

// nextHop is where frames for an address go: the next hop's MAC and the
// dataplane link it is on.
type nextHop struct {
	mac  header.MAC
	link uint8
}

// Start brings the appliance up on the spec's interfaces: one (one-armed)
// or two (two-armed: Role "client" toward the clients and the gateway,
// "server" toward the backends), each with the same number of queues.
// Each backend is reached through the interface the kernel's route to it
// leaves by.
func Start(ctx context.Context, spec *Spec, log *slog.Logger) (*Daemon, error) {
	if err := spec.Validate(); err != nil {
		return nil, err
	}
	if len(spec.Interfaces) == 0 {
		return nil, errors.New("appliance: no interface: list one (one-armed) or two (two-armed, with roles client and server)")
	}
	nq := max(spec.Interfaces[0].Queues, 1)
	d := &Daemon{
		log:     log.With("component", "appliance"),
		spec:    spec,
		builder: NewBuilder(),
		byIndex: map[int]uint8{},
		client:  uint8(spec.clientInterface()),
		hops:    map[netip.Addr]nextHop{},
		offside: map[netip.Addr]bool{},
		errs:    make(chan error, nq+2),
	}
	ok := false
	defer func() {
		if !ok {
			d.close()
		}
	}()
	var links []dataplane.Link
	for i, is := range spec.Interfaces {
		ifc, err := openIface(is.Name)
		if err != nil {
			return nil, err
		}
		d.ifaces = append(d.ifaces, ifc)
		d.byIndex[ifc.index] = uint8(i)
		l := dataplane.Link{MAC: ifc.mac}
		if spec.MTU == 0 {
			// IP-in-IP needs the real link MTU to know what fits.
			l.MTU = ifc.mtu
		}
		links = append(links, l)
	}
	d.links = Links{Self: d.ifaces[0].mac, Backend: d.mac, Interfaces: links, ClientLink: d.client, BackendLink: d.backendLink}
	maxFlows := spec.MaxFlows
	if maxFlows == 0 {
		maxFlows = 1 << 20
	}
	var err error
	to := conntrack.DefaultTimeouts()
	st := spec.Timeouts
	for _, x := range []struct {
		dst *time.Duration
		v   time.Duration
	}{{&to.SynSent, st.TCPSyn}, {&to.SynRecv, st.TCPSyn}, {&to.Established, st.TCPEstablished}, {&to.FinWait, st.TCPFinWait},
		{&to.TimeWait, st.TCPTimeWait}, {&to.Close, st.TCPClose}, {&to.UDP, st.UDP}, {&to.UDPUnreplied, st.UDPUnreplied}} {
		if x.v != 0 {
			*x.dst = x.v
		}
	}
	dpo := dataplane.Options{Workers: nq, Links: len(d.ifaces), MaxFlows: maxFlows, Timeouts: to}
	if spec.HA != nil {
		// An HA member owns nothing until VRRP makes it master.
		d.owned = map[netip.Addr]bool{}
		if spec.HA.Sync != nil {
			dpo.SyncQueue = syncQueue
		}
	}
	if d.dp, err = dataplane.New(dpo); err != nil {
		return nil, err
	}
	for _, ifc := range d.ifaces {
		if ifc.steer, err = nic.NewSteering(ifc.name, nq); err != nil {
			return nil, fmt.Errorf("steering on %s: %w", ifc.name, err)
		}
		for q := 0; q < nq; q++ {
			x, err := nic.OpenXDP(nic.XDPConfig{Iface: ifc.name, QueueID: q, ZeroCopy: true, BusyPoll: spec.BusyPoll})
			if err != nil {
				return nil, fmt.Errorf("%s queue %d: %w", ifc.name, q, err)
			}
			ifc.queues = append(ifc.queues, x)
			if err := ifc.steer.SetSocket(q, x.FD()); err != nil {
				return nil, err
			}
			d.log.Info("queue open", "iface", ifc.name, "queue", q, "mode", x.Mode())
		}
	}
	var workers []*dataplane.Worker
	for q := 0; q < nq; q++ {
		qs := make([]nic.Queue, len(d.ifaces))
		for i, ifc := range d.ifaces {
			qs[i] = ifc.queues[q]
		}
		w, err := d.dp.NewWorker(q, qs...)
		if err != nil {
			return nil, err
		}
		workers = append(workers, w)
	}
	if err := d.apply(); err != nil {
		return nil, err
	}
	for i, ifc := range d.ifaces {
		d.log.Info("steering attached", "iface", ifc.name, "mode", ifc.steer.Mode(), "role", d.role(uint8(i)))
	}

	ctx, d.cancel = context.WithCancel(ctx)
	ncpu := runtime.NumCPU()
	for i, w := range workers {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			cpu := i % ncpu
			if cs := spec.WorkerCPUs; len(cs) > 0 {
				cpu = cs[i%len(cs)]
			}
			if err := w.Run(ctx, dataplane.RunOptions{CPU: cpu}); err != nil && !errors.Is(err, context.Canceled) {
				d.errs <- fmt.Errorf("worker %d: %w", i, err)
			}
		}()
	}
	d.wg.Add(2)
	go func() { defer d.wg.Done(); d.dp.RunSweeper(ctx, 0) }()
	go func() { defer d.wg.Done(); d.watchNeighbors(ctx) }()
	d.checker = health.New(health.Options{Log: log, OnChange: d.healthChanged})
	d.checker.Set(healthTargets(spec))
	d.wg.Add(1)
	go func() { defer d.wg.Done(); d.checker.Run(ctx) }()
	if spec.HA != nil {
		if err := d.startHA(ctx); err != nil {
			return nil, fmt.Errorf("ha: %w", err)
		}
	}
	ok = true
	return d, nil
}

// syncQueue is the size of each worker's ring of changes for HA sync: at
// 10 ms between drains, room for 1.6M changes a second per worker.
const syncQueue = 1 << 14

// openIface reads what the dataplane needs of an interface: its index,
// MAC and MTU.
func openIface(name string) (*dataplaneIface, error) {
	l, err := netlink.LinkByName(name)
	if err != nil {
		return nil, fmt.Errorf("interface %s: %w", name, err)
	}
	ifc := &dataplaneIface{name: name, index: l.Attrs().Index}
	if ifc.mac, err = linkMAC(name); err != nil {
		return nil, err
	}
	if ifc.mtu, err = linkMTU(name); err != nil {
		return nil, err
	}
	return ifc, nil
}

// role names link i in logs.
func (d *Daemon) role(i uint8) string {
	switch {
	case len(d.ifaces) == 1:
		return "both"
	case i == d.client:
		return RoleClient
	}
	return RoleServer
}

// mac is Links.Backend: the last MAC seen for a backend's next hop.
func (d *Daemon) mac(a netip.Addr) header.MAC { return d.hops[a].mac }

// backendLink is Links.BackendLink: the link a backend's next hop is on.
func (d *Daemon) backendLink(a netip.Addr) uint8 { return d.hops[a].link }

// hop finds the next hop for a: the dataplane link the kernel's route to a
// leaves by and the MAC of the neighbour on it. It reports false, with the
// reason, when the route leaves by an interface the dataplane does not run
// on (or, want >= 0, by another link than want) or the neighbour is not
// resolved yet.
func (d *Daemon) hop(a netip.Addr, want int) (nextHop, bool, string) {
	_, ifindex, err := d.neigh.nextHop(a)
	if err != nil {
		return nextHop{}, false, err.Error()
	}
	link, ok := d.byIndex[ifindex]
	if !ok {
		return nextHop{}, false, "route leaves by an interface the dataplane does not run on"
	}
	if want >= 0 && int(link) != want {
		return nextHop{}, false, fmt.Sprintf("route leaves by %s, not the %s interface %s",
			d.ifaces[link].name, d.role(uint8(want)), d.ifaces[want].name)
	}
	m, ok := d.neigh.lookup(a)
	if !ok {
		return nextHop{}, false, "neighbour not resolved"
	}
	return nextHop{mac: m, link: link}, true, ""
}

// resolve refreshes every next hop; it reports whether any changed.
func (d *Daemon) resolve() bool {
	type target struct {
		addr netip.Addr
		want int // required link, or -1
	}
	var want []target
	if d.spec.Gateway.IsValid() {
		want = append(want, target{d.spec.Gateway, int(d.client)})
	}
	for _, s := range d.spec.Services {
		for _, b := range s.Backends {
			want = append(want, target{b.Address, -1})
		}
	}
	changed := false
	for _, t := range want {
		h, ok, why := d.hop(t.addr, t.want)
		if !ok {
			if strings.HasPrefix(why, "route leaves by") && !d.offside[t.addr] {
				d.log.Warn("next hop unusable", "addr", t.addr, "why", why)
				d.offside[t.addr] = true
			}
			if _, had := d.hops[t.addr]; had {
				d.log.Warn("neighbour lost", "addr", t.addr, "why", why)
				delete(d.hops, t.addr)
				changed = true
			}
			continue
		}
		delete(d.offside, t.addr)
		if old, had := d.hops[t.addr]; !had || old != h {
			d.log.Info("neighbour resolved", "addr", t.addr, "mac", fmt.Sprintf("%x", h.mac[:]), "iface", d.ifaces[h.link].name)
			d.hops[t.addr] = h
			changed = true
		}
	}
	return changed
}

// apply builds the dataplane config from the spec and current next hops
// and swaps it in, with the steering maps of every interface.
func (d *Daemon) apply() error {
	d.resolve()
	d.links.Gateway = d.hops[d.spec.Gateway].mac
	cfg, err := d.builder.Build(d.withHealth(), d.links)
	if err != nil {
		return err
	}
	if err := d.dp.Apply(cfg); err != nil {
		return err
	}
	d.trackServices()
	return d.steer()
}

// steer puts the addresses and services this appliance owns into the
// steering maps of every interface. Without HA it owns every VIP and
// local address; in an HA pair only those of the VRRP groups it is master
// of (d.owned), so that the backup's dataplane never sees their traffic:
// it reaches the backup's kernel, which drops it (not its address, and
// the appliance does not forward). Called with applyMu held.
func (d *Daemon) steer() error {
	owns := func(a netip.Addr) bool { return d.owned == nil || d.owned[a] }
	var vips [][4]byte
	seen := map[netip.Addr]bool{}
	for _, s := range d.spec.Services {
		if !seen[s.VIP] && owns(s.VIP) {
			vips = append(vips, s.VIP.As4())
		}
		seen[s.VIP] = true
	}
	// One steering entry per port: a range is expanded here, so the XDP
	// program keeps its exact-match lookup.
	all, err := steerServices(d.spec)
	if err != nil {
		return err
	}
	var svcs []nic.SteerService
	for _, sv := range all {
		if owns(netip.AddrFrom4(sv.Addr)) {
			svcs = append(svcs, sv)
		}
	}
	var locals [][4]byte
	for _, a := range d.spec.LocalAddrs {
		if owns(a) {
			locals = append(locals, a.As4())
		}
	}
	// Every interface steers the same addresses: clients reach VIPs on the
	// client side, backends answer SNAT addresses on the server side, and
	// either may carry ARP, echo and ICMP errors for both.
	var errs []error
	for _, ifc := range d.ifaces {
		if err := ifc.steer.Update(vips, svcs, locals); err != nil {
			errs = append(errs, fmt.Errorf("steering on %s: %w", ifc.name, err))
		}
	}
	return errors.Join(errs...)
}

func (d *Daemon) watchNeighbors(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			d.applyMu.Lock()
			if d.resolve() {
				if err := d.apply(); err != nil {
					d.log.Error("apply after neighbour change", "err", err)
				}
			}
			d.applyMu.Unlock()
		}
	}
}

// Dataplane returns the running dataplane (counters, connection table).
func (d *Daemon) Dataplane() *dataplane.Dataplane { return d.dp }

// Steering returns the steering program of the interface toward clients
// (one-armed, the only one).
func (d *Daemon) Steering() *nic.Steering { return d.ifaces[d.client].steer }

// Wait blocks until ctx ends or a worker fails.
func (d *Daemon) Wait(ctx context.Context) error {
	select {
	case <-ctx.Done():
		return nil
	case err := <-d.errs:
		return err
	}
}

// Close stops the workers, closes the sockets and detaches the programs.
func (d *Daemon) Close() error {
	d.close()
	return nil
}

func (d *Daemon) close() {
	d.stopHA()
	if d.cancel != nil {
		d.cancel()
	}
	d.wg.Wait()
	for _, ifc := range d.ifaces {
		for _, q := range ifc.queues {
			q.Close()
		}
		if ifc.steer != nil {
			ifc.steer.Close()
		}
	}
}
