package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/spf13/pflag"

	"github.com/culvert-lb/culvert/bench/lab"
)

// labCmd is `culvert lab up|down`: a namespace lab for trying the appliance
// by hand. `up` keeps the lab (and its servers, which live in this process)
// until interrupted; `down --name N` removes a lab left by a crashed `up`.
func labCmd(ctx context.Context, args []string) error {
	if len(args) == 0 {
		return errors.New("usage: culvert lab up [--name N] [--topology one-armed|two-armed|routed-backend] [--dsr] | culvert lab down --name N")
	}
	fs := pflag.NewFlagSet("lab", pflag.ContinueOnError)
	name := fs.String("name", "", "lab name: prefix of its namespaces (1-8 of [a-z0-9]); default random")
	topo := fs.String("topology", "one-armed", "one-armed, two-armed or routed-backend")
	dsr := fs.Bool("dsr", false, "put the VIP on the backends' loopback (dsr and ipip services)")
	if err := fs.Parse(args[1:]); err != nil {
		return err
	}
	switch args[0] {
	case "down":
		if *name == "" {
			return errors.New("lab down: --name is required")
		}
		return lab.Cleanup(*name)
	case "up":
	default:
		return fmt.Errorf("lab: unknown action %q (up or down)", args[0])
	}
	opt := lab.Options{Name: *name, DSR: *dsr}
	switch *topo {
	case "one-armed":
	case "two-armed":
		opt.Topology = lab.TwoArmed
	case "routed-backend":
		opt.Topology = lab.RoutedBackend
	default:
		return fmt.Errorf("lab: unknown topology %q", *topo)
	}
	l, err := lab.Up(ctx, opt)
	if err != nil {
		return err
	}
	defer l.Down()
	fmt.Printf("lab %s is up (%v); Ctrl-C takes it down\n", l.Name, l.Topology)
	for _, h := range l.Hosts() {
		var links []string
		for _, k := range h.Links {
			if k.Addr.IsValid() {
				links = append(links, fmt.Sprintf("%s %v", k.Name, k.Addr))
			} else {
				links = append(links, k.Name)
			}
		}
		fmt.Printf("  %-8s netns %-16s %v\n", h.Role, h.Name, links)
	}
	fmt.Printf("  VIP %v and SNAT %v route to the appliance; run e.g.\n", l.VIP, l.SNAT)
	fmt.Printf("  ip netns exec %s culvert run --config FILE   (interface %s)\n", l.Appliance.Name, l.ServerSide.Name)
	<-ctx.Done()
	return nil
}
