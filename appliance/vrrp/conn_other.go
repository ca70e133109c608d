//go:build !linux

package vrrp

import (
	"net/netip"
	"time"
)

// Conn is a VRRP socket on one interface; only Linux has one. Elsewhere
// Listen returns ErrNotSupported and a Conn is never made.
type Conn struct{}

// Listen returns ErrNotSupported: VRRP sockets exist only on Linux.
func Listen(cfg ConnConfig) (*Conn, error) { return nil, ErrNotSupported }

// Addr returns the zero address.
func (c *Conn) Addr() netip.Addr { return netip.Addr{} }

// Read returns ErrNotSupported.
func (c *Conn) Read(b []byte) (int, error) { return 0, ErrNotSupported }

// Receive returns ErrNotSupported.
func (c *Conn) Receive(b []byte) (Advert, netip.Addr, error) {
	return Advert{}, netip.Addr{}, ErrNotSupported
}

// SetReadDeadline returns ErrNotSupported.
func (c *Conn) SetReadDeadline(t time.Time) error { return ErrNotSupported }

// Send returns ErrNotSupported.
func (c *Conn) Send(a *Advert) error { return ErrNotSupported }

// Close does nothing.
func (c *Conn) Close() error { return nil }
