//go:build !linux

package vrrp

import "log/slog"

// NewRouter returns ErrNotSupported: VRRP sockets exist only on Linux.
func NewRouter(cfg RouterConfig, log *slog.Logger, onTransition func(vrid uint8, from, to State)) (*Router, error) {
	return nil, ErrNotSupported
}
