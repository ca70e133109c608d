package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"strings"
)

// labDemo runs the built-in default on a fresh namespace lab per mode: the
// appliance daemon on AF_XDP in its namespace, real HTTP and UDP clients
// and servers in theirs. It tears each lab down before the next, and on
// error or interrupt.
func labDemo(ctx context.Context, modes []string, conns, dgrams int) error {
	exe, err := os.Executable()
	if err != nil {
		return err
	}
	fmt.Println("culvert demo: namespace lab (root), appliance on AF_XDP")
	fmt.Println("  client 198.19.0.2 -> router 198.18.0.1 -> appliance 198.18.0.2, VIP 198.18.1.1 (tcp/80 http, udp/7 echo)")
	fmt.Println("  -> backends 198.18.0.11-13 (b0, b1, b2), weights 1:1:2; nat SNAT from 198.18.2.1-2; ipip decap in XDP on the backends")
	fmt.Println()
	type row struct {
		mode string
		t    labTraffic
		s    *RunStats
	}
	var rows []row
	for _, m := range modes {
		fmt.Printf("%s: bringing the lab up ... ", m)
		r, err := startLab(ctx, m, exe, nil)
		if err != nil {
			fmt.Println()
			return err
		}
		fmt.Printf("sending %d HTTP requests and %d UDP datagrams ... ", conns, dgrams)
		t := r.traffic(ctx, conns, dgrams)
		s, err := r.stopDaemon()
		r.stop()
		if err != nil {
			fmt.Println()
			return err
		}
		fmt.Println("done, lab down")
		rows = append(rows, row{m, t, s})
	}
	fmt.Println()
	fmt.Printf("%-5s %13s %12s  %s\n", "mode", "http ok/sent", "udp ok/sent", "requests per backend")
	for _, r := range rows {
		names := make([]string, 0, len(r.t.PerBackend))
		for n := range r.t.PerBackend {
			names = append(names, n)
		}
		sort.Strings(names)
		var per []string
		for _, n := range names {
			per = append(per, fmt.Sprintf("%s %d (%.0f%%)", n, r.t.PerBackend[n], 100*float64(r.t.PerBackend[n])/float64(max(r.t.HTTPOK, 1))))
		}
		fmt.Printf("%-5s %6d/%-6d %5d/%-6d  %s\n", r.mode, r.t.HTTPOK, r.t.HTTPSent, r.t.UDPOK, r.t.UDPSent, strings.Join(per, "  "))
	}
	fmt.Println("\nappliance counters (from the daemon on exit)")
	failed := false
	for _, r := range rows {
		d := r.s.Dataplane
		fmt.Printf("%-5s rx %d tx %d drop %d  new flows %d  steering: redirected %d passed-to-kernel %d", r.mode, d.RX, d.TX, d.Drop, d.NewFlows, r.s.Steering.Redirected, r.s.Steering.Passed)
		for k, v := range r.s.DropReasons {
			fmt.Printf("  %s=%d", k, v)
		}
		fmt.Println()
		for _, e := range r.t.Errors {
			fmt.Printf("      error: %s\n", e)
		}
		if r.t.HTTPOK != r.t.HTTPSent || r.t.UDPOK != r.t.UDPSent {
			failed = true
		}
	}
	if failed {
		return fmt.Errorf("demo: not every request succeeded")
	}
	return nil
}
