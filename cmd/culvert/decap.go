package main

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/spf13/pflag"

	"github.com/culvert-lb/culvert/nic"
)

// decap attaches the backend-side IP-in-IP decapsulator to an interface
// and keeps it attached until interrupted.
func decap(ctx context.Context, args []string, log *slog.Logger) error {
	fs := pflag.NewFlagSet("decap", pflag.ContinueOnError)
	iface := fs.String("iface", "", "interface to decapsulate on (required)")
	addrs := fs.StringSlice("addr", nil, "only decapsulate packets to these outer destinations (default: all IP-in-IP)")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *iface == "" {
		return errors.New("decap: --iface is required")
	}
	var as [][4]byte
	for _, s := range *addrs {
		a, err := netip.ParseAddr(s)
		if err != nil || !a.Is4() {
			return errors.New("decap: --addr " + s + " is not an IPv4 address")
		}
		as = append(as, a.As4())
	}
	d, err := nic.NewDecap(*iface, as)
	if err != nil {
		return err
	}
	defer d.Close()
	log.Info("decapsulating IP-in-IP", "iface", *iface, "mode", d.Mode())
	t := time.NewTicker(10 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			s, _ := d.Stats()
			log.Info("decap stopped", "stats", s)
			return nil
		case <-t.C:
		}
	}
}
