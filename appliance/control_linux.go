package appliance

import (
	"fmt"
	"net/netip"
	"slices"
)

// Spec returns a copy of the configuration in force.
func (d *Daemon) Spec() Spec {
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	s := *d.spec
	s.Services = slices.Clone(s.Services)
	for i := range s.Services {
		s.Services[i].Backends = slices.Clone(s.Services[i].Backends)
	}
	return s
}

// SetBackendEnabled drains (enabled false: existing flows continue, no new
// ones) or re-enables the backend at addr (and port, when non-zero) in every
// service that lists it, keeping its weight, and applies the result live.
func (d *Daemon) SetBackendEnabled(addr netip.Addr, port uint16, enabled bool) error {
	return d.editBackend(addr, port, func(b *BackendSpec) { b.Disabled = !enabled })
}

// SetBackendWeight sets the weight of the backend at addr (and port, when
// non-zero) in every service that lists it, and applies the result live.
// Weight 0 drains: existing flows continue, no new ones. It is a reload of
// the running configuration with one change; the file is not rewritten.
func (d *Daemon) SetBackendWeight(addr netip.Addr, port uint16, weight uint32) error {
	return d.editBackend(addr, port, func(b *BackendSpec) { b.Weight = weight })
}

// editBackend applies edit to every listing of a backend and reloads.
func (d *Daemon) editBackend(addr netip.Addr, port uint16, edit func(*BackendSpec)) error {
	s := d.Spec()
	found := false
	for i := range s.Services {
		for j := range s.Services[i].Backends {
			b := &s.Services[i].Backends[j]
			if b.Address == addr && (port == 0 || b.Port == port || (b.Port == 0 && s.Services[i].Port == port)) {
				edit(b)
				found = true
			}
		}
	}
	if !found {
		return fmt.Errorf("no backend %v port %d in any service", addr, port)
	}
	err := d.Reload(&s)
	if err == ErrNoChange {
		return nil
	}
	return err
}
