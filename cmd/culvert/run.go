package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/culvert-lb/culvert/appliance"
	"github.com/culvert-lb/culvert/dataplane"
	"github.com/culvert-lb/culvert/nic"
)

// RunStats is what `culvert run --stats-file` writes on exit.
type RunStats struct {
	Dataplane   dataplane.Stats   `json:"dataplane"`
	DropReasons map[string]uint64 `json:"drop_reasons,omitempty"`
	Steering    nic.SteerStats    `json:"steering"`
	LiveFlows   int               `json:"live_flows"`
}

func runDaemon(ctx context.Context, args []string, log *slog.Logger) error {
	fs := pflag.NewFlagSet("run", pflag.ContinueOnError)
	path := fs.String("config", "/etc/culvert/culvert.yaml", "configuration file")
	statsFile := fs.String("stats-file", "", "write the final counters here as JSON on exit")
	if err := fs.Parse(args); err != nil {
		return err
	}
	spec, err := appliance.LoadFile(*path)
	if err != nil {
		return err
	}
	d, err := appliance.Start(ctx, spec, log)
	if err != nil {
		return err
	}
	log.Info("running", "config", *path, "services", len(spec.Services))
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	go func() {
		for range hup {
			// A bad file is refused with its file:line:column errors; the
			// running configuration stays.
			next, err := appliance.LoadFile(*path)
			if err == nil {
				err = d.Reload(next)
			}
			switch {
			case errors.Is(err, appliance.ErrNoChange):
				log.Info("reload: no change", "config", *path)
			case err != nil:
				log.Error("reload refused", "config", *path, "err", err)
			}
		}
	}()
	err = d.Wait(ctx)
	steer, _ := d.Steering().Stats()
	d.Close()
	s := d.Dataplane().Stats()
	log.Info("stopped", "rx", s.RX, "tx", s.TX, "pass", s.Pass, "drop", s.Drop, "new_flows", s.NewFlows)
	if *statsFile != "" {
		out := RunStats{Dataplane: s, Steering: steer, LiveFlows: d.Dataplane().Table().Stats().Live}
		for i, n := range s.Drops {
			if n > 0 {
				if out.DropReasons == nil {
					out.DropReasons = map[string]uint64{}
				}
				out.DropReasons[dataplane.DropReason(i).String()] = n
			}
		}
		b, _ := json.MarshalIndent(out, "", "  ")
		if werr := os.WriteFile(*statsFile, b, 0o644); werr != nil && err == nil {
			err = werr
		}
	}
	return err
}

func checkConfig(args []string) error {
	fs := pflag.NewFlagSet("check-config", pflag.ContinueOnError)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() != 1 {
		return errors.New("usage: culvert check-config FILE")
	}
	spec, err := appliance.LoadFile(fs.Arg(0))
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stdout, "%s: ok (%d services)\n", fs.Arg(0), len(spec.Services))
	return nil
}
