package main

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/culvert-lb/culvert/bench/suite"
)

// benchCmd runs `culvert bench`: Culvert next to the XDP and AF_XDP
// ceilings, nftables and HAProxy on fresh namespace labs, printed as a
// table (see bench/suite).
func benchCmd(ctx context.Context, args []string, env []string) error {
	fs := pflag.NewFlagSet("bench", pflag.ContinueOnError)
	duts := fs.String("duts", strings.Join(suite.AllDUTs, ","), "devices under test for packet rates (empty: none)")
	conns := fs.String("conns", strings.Join(suite.AllConnTargets, ","), "targets for TCP connection rates (empty: none)")
	sizes := fs.String("sizes", "64,1518", "frame sizes with FCS")
	flows := fs.Int("flows", 256, "distinct flows (source ports)")
	trial := fs.Duration("trial", 0, "confirmation trial (default 2s)")
	repeats := fs.Int("repeats", 0, "confirmation trials (default 3)")
	quick := fs.Bool("quick", false, "one size (64), shorter trials and search: a smoke run of about a minute and a half")
	noTrafgen := fs.Bool("no-trafgen", false, "skip the generator against trafgen")
	jsonOut := fs.String("json", "", "write the report as JSON to this file")
	htmlOut := fs.String("html", "", "write the report as an HTML page with charts to this file")
	profile := fs.String("profile", "", "directory where each Culvert daemon writes a CPU profile")
	busyPoll := fs.Bool("busy-poll", false, "run Culvert and the reflector with AF_XDP preferred busy polling (no NAPI thread for them; see bench/suite)")
	senderNAPI := fs.Bool("sender-napi", false, "leave the appliance's receive path in the sender's softirq (generator's CPU) instead of threaded NAPI on the DUT's CPU")
	if err := fs.Parse(args); err != nil {
		return err
	}
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	opt := suite.Options{Exe: exe, Env: env, Flows: *flows, Trial: *trial, Repeats: *repeats, NoTrafgen: *noTrafgen, Progress: os.Stderr, ProfileDir: *profile, SenderNAPI: *senderNAPI, BusyPoll: *busyPoll}
	split := func(s string) []string {
		out := []string{}
		for _, f := range strings.Split(s, ",") {
			if f = strings.TrimSpace(f); f != "" {
				out = append(out, f)
			}
		}
		return out
	}
	opt.DUTs, opt.Conns = split(*duts), split(*conns)
	for _, s := range split(*sizes) {
		n, err := strconv.Atoi(s)
		if err != nil || n < 64 || n > 1518 {
			return fmt.Errorf("bench: size %q: want 64 to 1518", s)
		}
		opt.Sizes = append(opt.Sizes, n)
	}
	if *quick {
		opt.Sizes = []int{64}
		opt.Steps, opt.Repeats = 4, 1
		opt.SearchTrial, opt.Trial = 500e6, 1e9
		opt.ConnTrial = 1e9
	}
	rep, err := suite.Run(ctx, opt)
	if rep != nil {
		fmt.Fprint(os.Stderr, "\r\033[K")
		rep.Table(os.Stdout)
		if *jsonOut != "" {
			if f, ferr := os.Create(*jsonOut); ferr == nil {
				rep.WriteJSON(f)
				f.Close()
			} else {
				fmt.Fprintln(os.Stderr, "bench:", ferr)
			}
		}
		if *htmlOut != "" {
			if f, ferr := os.Create(*htmlOut); ferr == nil {
				rep.WriteHTML(f)
				f.Close()
			} else {
				fmt.Fprintln(os.Stderr, "bench:", ferr)
			}
		}
	}
	return err
}
