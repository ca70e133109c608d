//go:build !linux

package nic

import "time"

// XDP is an AF_XDP queue. AF_XDP exists only on Linux: here OpenXDP
// returns ErrNotSupported and the methods exist only so that code using
// XDP builds everywhere.
type XDP struct{}

var _ Queue = (*XDP)(nil)

// OpenXDP returns ErrNotSupported: AF_XDP is Linux only.
func OpenXDP(cfg XDPConfig) (*XDP, error) { return nil, ErrNotSupported }

// FD returns -1.
func (x *XDP) FD() int { return -1 }

// Mode returns ModeCopy.
func (x *XDP) Mode() XDPMode { return ModeCopy }

// ZeroCopyError returns ErrNotSupported.
func (x *XDP) ZeroCopyError() error { return ErrNotSupported }

// UMEM returns nil.
func (x *XDP) UMEM() []byte { return nil }

// ChunkSize returns 0.
func (x *XDP) ChunkSize() int { return 0 }

// Headroom returns 0.
func (x *XDP) Headroom() int { return 0 }

// Receive returns 0.
func (x *XDP) Receive(d []Desc) int { return 0 }

// Transmit returns 0.
func (x *XDP) Transmit(d []Desc) int { return 0 }

// Pass does nothing.
func (x *XDP) Pass(d []Desc) {}

// Release does nothing.
func (x *XDP) Release(d []Desc) {}

// Alloc returns 0.
func (x *XDP) Alloc(d []Desc) int { return 0 }

// Wait returns ErrNotSupported.
func (x *XDP) Wait(timeout time.Duration) error { return ErrNotSupported }

// MaxWaitAny is the most queues WaitAny sleeps on at once.
const MaxWaitAny = 16

// WaitAny returns ErrNotSupported.
func WaitAny(timeout time.Duration, qs ...*XDP) error { return ErrNotSupported }

// Stats returns ErrNotSupported.
func (x *XDP) Stats() (XDPStats, error) { return XDPStats{}, ErrNotSupported }

// Close returns nil.
func (x *XDP) Close() error { return nil }
