package main

import (
	"errors"
	"fmt"
	"net/netip"
	"os"
	"strconv"
	"strings"

	"github.com/spf13/pflag"

	"github.com/culvert-lb/culvert/appliance/control"
	"github.com/culvert-lb/culvert/conntrack"
)

// FlowView is one connection-table entry as `culvert show flows` prints it.
type FlowView struct {
	Client    string `json:"client"`
	VIP       string `json:"vip"`
	Proto     uint8  `json:"proto"`
	Backend   uint32 `json:"backend_id"`
	NAT       string `json:"nat,omitempty"` // local address:port -> backend:port
	State     string `json:"state"`
	ExpiresIn string `json:"expires_in"`
}

func flowView(r conntrack.Record[conntrack.Key4]) FlowView {
	f := r.Flow
	v := FlowView{
		Client:    netip.AddrPortFrom(netip.AddrFrom4(f.Orig.Src), f.Orig.SrcPort).String(),
		VIP:       netip.AddrPortFrom(netip.AddrFrom4(f.Orig.Dst), f.Orig.DstPort).String(),
		Proto:     f.Orig.Proto,
		Backend:   f.Backend,
		State:     r.State.String(),
		ExpiresIn: r.Remaining.String(),
	}
	if f.HasReply {
		v.NAT = netip.AddrPortFrom(netip.AddrFrom4(f.Reply.Dst), f.Reply.DstPort).String() + " -> " +
			netip.AddrPortFrom(netip.AddrFrom4(f.Reply.Src), f.Reply.SrcPort).String()
	}
	return v
}

// clientCmd runs `culvert show ...`, `culvert set ...` and `culvert reload`
// against the daemon's control socket.
func clientCmd(cmd string, args []string) error {
	fs := pflag.NewFlagSet(cmd, pflag.ContinueOnError)
	sock := fs.String("control", control.DefaultSocket, "the daemon's control socket")
	limit := fs.Int("limit", 100, "show flows: at most this many")
	if err := fs.Parse(args); err != nil {
		return err
	}
	c := control.NewClient(*sock)
	var out []byte
	var err error
	a := fs.Args()
	switch {
	case cmd == "reload":
		out, err = c.Do("POST", "/v1/reload", nil)
	case cmd == "show" && len(a) == 1 && (a[0] == "stats" || a[0] == "services" || a[0] == "backends" || a[0] == "health" || a[0] == "vrrp" || a[0] == "sync"):
		out, err = c.Do("GET", "/v1/"+a[0], nil)
	case cmd == "show" && len(a) == 1 && a[0] == "flows":
		out, err = c.Do("GET", "/v1/flows?limit="+strconv.Itoa(*limit), nil)
	case cmd == "set" && len(a) == 3 && a[0] == "backend" && (a[2] == "drain" || a[2] == "enable"):
		req, perr := weightRequest(a[1], []string{"weight", "0"})
		if perr != nil {
			return perr
		}
		out, err = c.Do("POST", "/v1/backends/enabled", control.EnabledRequest{Address: req.Address, Port: req.Port, Enabled: a[2] == "enable"})
	case cmd == "set" && len(a) >= 3 && a[0] == "backend":
		req, perr := weightRequest(a[1], a[2:])
		if perr != nil {
			return perr
		}
		out, err = c.Do("POST", "/v1/backends/weight", req)
	default:
		return errors.New("usage: culvert show stats|services|backends|health|vrrp|sync|flows [--limit N] | culvert set backend ADDR[:PORT] weight N|drain|enable | culvert reload   [--control SOCKET]")
	}
	if err != nil {
		return err
	}
	os.Stdout.Write(out)
	return nil
}

func weightRequest(target string, verb []string) (control.WeightRequest, error) {
	var req control.WeightRequest
	if ap, err := netip.ParseAddrPort(target); err == nil {
		req.Address, req.Port = ap.Addr().String(), ap.Port()
	} else if a, err := netip.ParseAddr(target); err == nil {
		req.Address = a.String()
	} else {
		return req, fmt.Errorf("set backend: %q is not ADDR or ADDR:PORT", target)
	}
	switch {
	case len(verb) == 1 && verb[0] == "drain":
		req.Weight = 0
	case len(verb) == 2 && verb[0] == "weight":
		n, err := strconv.ParseUint(verb[1], 10, 16)
		if err != nil {
			return req, fmt.Errorf("set backend: weight %q: want 0 to 65535", verb[1])
		}
		req.Weight = uint32(n)
	default:
		return req, fmt.Errorf("set backend: want %q or %q, not %q", "weight N", "drain", strings.Join(verb, " "))
	}
	return req, nil
}
