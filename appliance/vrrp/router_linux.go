package vrrp

import (
	"fmt"
	"log/slog"
	"net"
)

// NewRouter validates cfg and opens what the groups need on
// cfg.Interface: the VRRP socket (Listen), a packet socket for gratuitous
// ARP and, when some interface is tracked, an rtnetlink socket that
// follows link state. All live in the network namespace of the calling
// thread. Start runs the groups; Stop ends them.
//
// onTransition, if not nil, is called for every state change of every
// group, on the Router's driver goroutine: see Router. log, if nil, is
// slog.Default(). NewRouter needs CAP_NET_RAW.
func NewRouter(cfg RouterConfig, log *slog.Logger, onTransition func(vrid uint8, from, to State)) (*Router, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("vrrp %s: %w", cfg.Interface, err)
	}
	if log == nil {
		log = slog.Default()
	}
	ifi, err := net.InterfaceByName(cfg.Interface)
	if err != nil {
		return nil, fmt.Errorf("vrrp %s: %w", cfg.Interface, err)
	}
	conn, err := Listen(ConnConfig{Interface: cfg.Interface, Addr: cfg.Addr, Peers: cfg.Peers})
	if err != nil {
		return nil, err
	}
	cfg.Addr = conn.Addr()
	var arp announcer
	if a, err := openAnnouncer(ifi); err != nil {
		log.Warn("vrrp: no gratuitous arp", "interface", cfg.Interface, "err", err)
	} else {
		arp = a
	}
	var links *linkWatch
	names := trackedInterfaces(&cfg)
	if len(names) > 0 {
		if links, err = openLinkWatch(names); err != nil {
			conn.Close()
			if arp != nil {
				arp.Close()
			}
			return nil, fmt.Errorf("vrrp %s: %w", cfg.Interface, err)
		}
	}
	var ls linkSource
	if links != nil {
		ls = links // not a typed nil in the interface
	}
	r, err := newRouter(cfg, log, onTransition, conn, arp, ls)
	if err != nil {
		conn.Close()
		if arp != nil {
			arp.Close()
		}
		if links != nil {
			links.Close()
		}
		return nil, fmt.Errorf("vrrp %s: %w", cfg.Interface, err)
	}
	// The watch socket is already subscribed, so a change from here on is
	// queued for the watcher and cannot fall between this read and it.
	if links != nil {
		if err := links.resync(r.setLink); err != nil {
			r.Stop()
			return nil, fmt.Errorf("vrrp %s: %w", cfg.Interface, err)
		}
	}
	return r, nil
}
