package appliance

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// ErrNoChange is returned by Reload when the new configuration equals the
// running one.
var ErrNoChange = errors.New("configuration unchanged")

// Reload validates spec, refuses changes that cannot apply live, and swaps
// it in: services and backends are added, removed and re-weighted, the
// dataplane tables and the steering maps are rebuilt, and flows to backends
// that stay keep their backend (backend IDs are stable). A refused or
// failed reload leaves the running configuration in force.
//
// What cannot change live, because it sizes memory or sockets opened at
// start: the interfaces (names, queues, roles), max_flows, timeouts (the
// connection table's), control_socket, metrics_listen and ha (VRRP groups
// and sync run on sockets opened at start), except a VRRP group's priority
// and addresses. A reload sets priorities live, as keepalived's does, so
// lowering the master's below its peer's hands the group over (a planned
// failover) and raising it back takes it back. It may change the VIPs and
// SNAT addresses a group owns (with one group: add or remove a service's
// VIP or a local address): a master claims the new ones at once.
func (d *Daemon) Reload(spec *Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	if err := d.reload(spec); err != nil {
		return err
	}
	// Not under applyMu: the checker calls healthChanged, which takes it.
	d.checker.Set(healthTargets(spec))
	return nil
}

func (d *Daemon) reload(spec *Spec) error {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	old := d.spec
	var fixed []string
	if !slices.Equal(spec.Interfaces, old.Interfaces) {
		fixed = append(fixed, "interfaces")
	}
	if !slices.Equal(spec.WorkerCPUs, old.WorkerCPUs) || spec.BusyPoll != old.BusyPoll {
		fixed = append(fixed, "worker_cpus/busy_poll")
	}
	if spec.MaxFlows != old.MaxFlows {
		fixed = append(fixed, "max_flows")
	}
	if spec.Timeouts != old.Timeouts {
		fixed = append(fixed, "timeouts")
	}
	if spec.ControlSocket != old.ControlSocket || spec.MetricsListen != old.MetricsListen {
		fixed = append(fixed, "control_socket/metrics_listen")
	}
	prios, ok := priorityChanges(spec.HA, old.HA)
	if !ok {
		fixed = append(fixed, "ha other than the groups' priorities and addresses")
	}
	if len(fixed) > 0 {
		return fmt.Errorf("reload refused: %v cannot change while running (restart culvert to change them); the running configuration stays", fixed)
	}
	a, _ := Marshal(old)
	b, _ := Marshal(spec)
	if bytes.Equal(a, b) {
		return ErrNoChange
	}
	d.spec = spec
	// Forget the health of backends that left every checked service.
	keep := map[netip.AddrPort]bool{}
	for _, t := range healthTargets(spec) {
		keep[t.Addr] = true
	}
	for a := range d.down {
		if !keep[a] {
			delete(d.down, a)
		}
	}
	if err := d.apply(); err != nil {
		d.spec = old
		if rerr := d.apply(); rerr != nil {
			d.log.Error("restoring the running configuration after a failed reload", "err", rerr)
		}
		return fmt.Errorf("reload failed, running configuration restored: %w", err)
	}
	if d.ha != nil {
		d.setGroupAddrs(groupAddrChanges(spec, old))
	}
	for _, c := range prios {
		if err := d.ha.router.SetPriority(c.vrid, c.prio); err != nil {
			d.log.Error("vrrp priority not changed", "vrid", c.vrid, "err", err) // Validate keeps 1..254
			continue
		}
		d.log.Info("vrrp priority set by reload", "vrid", c.vrid, "priority", c.prio)
	}
	d.log.Info("configuration applied", "services", len(spec.Services))
	return nil
}
