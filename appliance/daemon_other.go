//go:build !linux

package appliance

import (
	"context"
	"errors"
	"log/slog"

	"github.com/culvert-lb/culvert/dataplane"
	"github.com/culvert-lb/culvert/nic"
)

// Daemon is a running appliance; it needs Linux (AF_XDP).
type Daemon struct{}

// Start is not supported off Linux.
func Start(ctx context.Context, spec *Spec, log *slog.Logger) (*Daemon, error) {
	return nil, errors.New("appliance: needs Linux (AF_XDP)")
}

// Dataplane returns nil.
func (d *Daemon) Dataplane() *dataplane.Dataplane { return nil }

// Wait returns at once.
func (d *Daemon) Wait(ctx context.Context) error { return nil }

// Close does nothing.
func (d *Daemon) Close() error { return nil }

// Steering returns nil.
func (d *Daemon) Steering() *nic.Steering { return nil }

// ErrNoChange is returned by Reload when nothing changed.
var ErrNoChange = errors.New("configuration unchanged")

// Reload is not supported off Linux.
func (d *Daemon) Reload(spec *Spec) error { return errors.New("appliance: needs Linux (AF_XDP)") }
