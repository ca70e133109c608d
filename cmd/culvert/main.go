// Command culvert is the Culvert appliance's command line.
//
//	culvert run --config FILE
//	culvert check-config FILE
//	culvert demo [--mode nat|dsr|ipip|all] [--conns N] [--datagrams N]
//	culvert version
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/pflag"

	"github.com/culvert-lb/culvert/appliance"
	"github.com/culvert-lb/culvert/bench"
)

var version = "dev"

const usage = `culvert: a Layer 4 load balancer on AF_XDP

usage:
  culvert run --config FILE      run the appliance (root: AF_XDP, XDP)
  culvert check-config FILE      validate a configuration file
  culvert decap --iface IF       backend side: strip IP-in-IP in XDP (root)
  culvert lab up|down            a namespace lab to try it by hand (root)
  culvert show stats|services|backends|health|vrrp|sync|flows   ask the running daemon
  culvert set backend ADDR[:PORT] weight N|drain|enable   change a backend live
  culvert reload                 re-read the configuration file (like SIGHUP)
  culvert demo [flags]           run the built-in default on a namespace lab (root; else
                                 in memory) and print how traffic spread over the backends
  culvert bench [flags]          measure Culvert next to nftables, HAProxy, trafgen and the
                                 XDP/AF_XDP ceilings on namespace labs (root; about 8 minutes)
  culvert version                print the version

Run "culvert COMMAND --help" for a command's flags.
`

func main() {
	log := slog.New(slog.NewTextHandler(os.Stderr, nil))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], log); err != nil {
		if errors.Is(err, pflag.ErrHelp) {
			os.Exit(0)
		}
		fmt.Fprintln(os.Stderr, "culvert:", err)
		os.Exit(2)
	}
}

func run(ctx context.Context, args []string, log *slog.Logger) error {
	if len(args) == 0 {
		fmt.Fprint(os.Stderr, usage)
		return errors.New("no command")
	}
	switch args[0] {
	case "demo":
		return demo(ctx, args[1:])
	case "run":
		return runDaemon(ctx, args[1:], log)
	case "check-config":
		return checkConfig(args[1:])
	case "decap":
		return decap(ctx, args[1:], log)
	case "lab":
		return labCmd(ctx, args[1:])
	case "show", "set", "reload":
		return clientCmd(args[0], args[1:])
	case "bench":
		var env []string
		if os.Getenv("CULVERT_TEST_AS_MAIN") == "1" {
			env = []string{"CULVERT_TEST_AS_MAIN=1"}
		}
		return benchCmd(ctx, args[1:], env)
	case "version":
		fmt.Println("culvert", version)
		return nil
	case "help", "-h", "--help":
		fmt.Print(usage)
		return nil
	}
	fmt.Fprint(os.Stderr, usage)
	return fmt.Errorf("unknown command %q", args[0])
}

func demo(ctx context.Context, args []string) error {
	fs := pflag.NewFlagSet("demo", pflag.ContinueOnError)
	mode := fs.String("mode", "all", "forwarding mode: nat, dsr, ipip or all")
	conns := fs.Int("conns", 0, "TCP connections per mode (each: handshake, request, response, close); default 300 on the lab, 3000 in memory")
	dgrams := fs.Int("datagrams", 0, "UDP echo datagrams per mode; default 100 on the lab, 1000 in memory")
	memory := fs.Bool("memory", false, "use the in-memory virtual lab even as root")
	if err := fs.Parse(args); err != nil {
		return err
	}
	onLab := os.Geteuid() == 0 && !*memory
	if *conns == 0 {
		*conns = map[bool]int{true: 300, false: 3000}[onLab]
	}
	if *dgrams == 0 {
		*dgrams = map[bool]int{true: 100, false: 1000}[onLab]
	}
	if *conns < 0 || *conns > 1_000_000 || *dgrams < 0 || *dgrams > 1_000_000 {
		return errors.New("demo: --conns and --datagrams must be within 0..1000000")
	}
	modes := []string{*mode}
	if *mode == "all" {
		modes = []string{"nat", "dsr", "ipip"}
	}
	if onLab {
		return labDemo(ctx, modes, *conns, *dgrams)
	}
	fmt.Println("culvert demo: in-memory virtual lab (not root, or --memory: no namespaces, no AF_XDP)")
	fmt.Println("  client hosts 198.19.0.10-209 -> VIP 198.18.1.1 (tcp/80 web, udp/7 echo) -> backends 198.18.0.11-13, weights 1:1:2")
	fmt.Println("  every frame goes through the real dataplane; simulated hosts verify every checksum from scratch")
	fmt.Println()
	var results []*bench.MemLabResult
	for _, m := range modes {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		spec := appliance.Default(m)
		if err := spec.Validate(); err != nil {
			return err
		}
		r, err := bench.RunMemLab(spec, bench.MemLabOptions{TCPConns: *conns, UDPDatagrams: *dgrams})
		if err != nil {
			return err
		}
		results = append(results, r)
	}
	fmt.Print(bench.Format(results))
	for _, r := range results {
		if r.TCPOK != r.TCPConns || r.UDPOK != r.UDPSent || len(r.Problems) > 0 {
			return fmt.Errorf("demo: %s mode did not complete every exchange", r.Mode)
		}
	}
	return nil
}
