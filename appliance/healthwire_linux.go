package appliance

import (
	"net/netip"
	"slices"

	"github.com/culvert-lb/culvert/appliance/health"
)

// backendPort is the port a backend serves a service on.
func backendPort(s *ServiceSpec, b *BackendSpec) uint16 {
	if b.Port != 0 {
		return b.Port
	}
	return s.Port
}

// healthTargets lists one check per backend of every service that has a
// health check. A backend listed by several services with checks is
// probed once, with the first service's check.
func healthTargets(spec *Spec) []health.Target {
	var out []health.Target
	seen := map[netip.AddrPort]bool{}
	for i := range spec.Services {
		sv := &spec.Services[i]
		if sv.HealthCheck == nil {
			continue
		}
		for j := range sv.Backends {
			a := netip.AddrPortFrom(sv.Backends[j].Address, backendPort(sv, &sv.Backends[j]))
			if !seen[a] {
				seen[a] = true
				out = append(out, health.Target{Addr: a, Spec: sv.HealthCheck.WithDefaults()})
			}
		}
	}
	return out
}

// withHealth returns the spec to build tables from: the running one with
// backends that fail their check at weight 0, so they take no new flows
// while existing ones continue (Maglev rebuilt without them). Called under
// applyMu.
func (d *Daemon) withHealth() *Spec {
	if len(d.down) == 0 {
		return d.spec
	}
	s := *d.spec
	s.Services = slices.Clone(s.Services)
	for i := range s.Services {
		sv := &s.Services[i]
		if sv.HealthCheck == nil {
			continue
		}
		sv.Backends = slices.Clone(sv.Backends)
		for j := range sv.Backends {
			if d.down[netip.AddrPortFrom(sv.Backends[j].Address, backendPort(sv, &sv.Backends[j]))] {
				sv.Backends[j].Weight = 0
			}
		}
	}
	return &s
}

// healthChanged is the checker's OnChange: it takes a failed backend out of
// new-flow selection and brings a recovered one back.
func (d *Daemon) healthChanged(t health.Target, from, to health.State) {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	if d.down == nil {
		d.down = map[netip.AddrPort]bool{}
	}
	was := d.down[t.Addr]
	d.down[t.Addr] = !to.Eligible()
	if was == d.down[t.Addr] {
		return
	}
	if err := d.apply(); err != nil {
		d.log.Error("apply after health change", "backend", t.Addr, "err", err)
		return
	}
	d.log.Info("backend health", "backend", t.Addr, "from", from, "to", to, "new_flows", !d.down[t.Addr])
}

// serviceTrack names the VRRP tracked condition of service name.
func serviceTrack(name string) string { return "service " + name }

// trackServices reports to VRRP, for each service a group tracks,
// whether any of its backends is still up (keepalived's track_script on
// the pool). Called under applyMu, by apply: after every change of
// health or configuration.
func (d *Daemon) trackServices() {
	if d.ha == nil || d.ha.router == nil {
		return
	}
	for _, g := range d.spec.HA.Groups {
		for _, t := range g.TrackService {
			up := false
			for i := range d.spec.Services {
				sv := &d.spec.Services[i]
				if sv.Name != t.Name {
					continue
				}
				for j := range sv.Backends {
					up = up || !d.down[netip.AddrPortFrom(sv.Backends[j].Address, backendPort(sv, &sv.Backends[j]))]
				}
			}
			d.ha.router.SetTracked(serviceTrack(t.Name), up)
		}
	}
}
