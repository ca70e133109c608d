//go:build !linux

package nic

// Decap is the IPIP decapsulation XDP program on one interface. XDP
// exists only on Linux: elsewhere every method returns ErrNotSupported.
type Decap struct{}

// NewDecap returns ErrNotSupported.
func NewDecap(iface string, addrs [][4]byte) (*Decap, error) { return nil, ErrNotSupported }

// Mode returns AttachAuto.
func (d *Decap) Mode() AttachMode { return AttachAuto }

// Update returns ErrNotSupported.
func (d *Decap) Update(addrs [][4]byte) error { return ErrNotSupported }

// Stats returns ErrNotSupported.
func (d *Decap) Stats() (DecapStats, error) { return DecapStats{}, ErrNotSupported }

// Close returns nil.
func (d *Decap) Close() error { return nil }
