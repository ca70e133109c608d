package appliance

import (
	"bytes"
	"errors"
	"fmt"
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
// start: the interfaces (names, queues, roles) and max_flows.
func (d *Daemon) Reload(spec *Spec) error {
	if err := spec.Validate(); err != nil {
		return err
	}
	d.applyMu.Lock()
	defer d.applyMu.Unlock()
	old := d.spec
	var fixed []string
	if !slices.Equal(spec.Interfaces, old.Interfaces) {
		fixed = append(fixed, "interfaces")
	}
	if spec.MaxFlows != old.MaxFlows {
		fixed = append(fixed, "max_flows")
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
	if err := d.apply(); err != nil {
		d.spec = old
		if rerr := d.apply(); rerr != nil {
			d.log.Error("restoring the running configuration after a failed reload", "err", rerr)
		}
		return fmt.Errorf("reload failed, running configuration restored: %w", err)
	}
	d.log.Info("configuration applied", "services", len(spec.Services))
	return nil
}
