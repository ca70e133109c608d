//go:build linux

package nic

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
)

// Decap is the IPIP decapsulation XDP program (see the notes in decap.go)
// attached to one interface of a backend as a bpf_link, never pinned: the
// kernel detaches it on Close or when the process dies.
//
// Its methods are safe for concurrent use and serialized with each other.
// There is no useful zero value: use NewDecap.
type Decap struct {
	progAttachment
	addrs *ebpf.Map
	stats *ebpf.Map
}

// NewDecap loads the decapsulation program with the host's addresses addrs
// (the outer destinations it accepts; at least one) and attaches it to
// iface, in native mode or else generic mode (Mode reports which).
func NewDecap(iface string, addrs [][4]byte) (*Decap, error) {
	return newDecap(iface, addrs, AttachAuto)
}

func newDecap(iface string, addrs [][4]byte, mode AttachMode) (*Decap, error) {
	d, err := loadDecap(iface, addrs)
	if err != nil {
		return nil, err
	}
	d.link, d.mode, err = progAttach(d.prog, iface, mode)
	if err != nil {
		d.coll.Close()
		return nil, fmt.Errorf("decap on %s: %w", iface, err)
	}
	return d, nil
}

// loadDecap loads the program and fills its map without attaching it;
// iface only names the Decap in errors.
func loadDecap(iface string, addrs [][4]byte) (*Decap, error) {
	if err := decapCheckAddrs(addrs); err != nil {
		return nil, fmt.Errorf("decap on %s: %w", iface, err)
	}
	coll, err := ebpf.NewCollection(decapSpec())
	if err != nil {
		return nil, fmt.Errorf("decap on %s: load: %w", iface, err)
	}
	d := &Decap{
		progAttachment: progAttachment{iface: iface, coll: coll, prog: coll.Programs[decapProgName]},
		addrs:          coll.Maps[decapMapAddrs],
		stats:          coll.Maps[decapMapStats],
	}
	// The map is full before the program is attached: no frame sees it
	// half filled.
	if err := addrKeySet(addrs).addTo(d.addrs); err != nil {
		coll.Close()
		return nil, fmt.Errorf("decap on %s: addresses: %w", iface, err)
	}
	return d, nil
}

// Mode returns the mode the program was attached in: AttachNative or
// AttachGeneric.
func (d *Decap) Mode() AttachMode { return d.mode }

// Update replaces the addresses (at least one) whose IPIP traffic is
// decapsulated, adding the new ones before deleting the stale ones.
func (d *Decap) Update(addrs [][4]byte) error {
	if err := decapCheckAddrs(addrs); err != nil {
		return fmt.Errorf("decap on %s: update: %w", d.iface, err)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return fmt.Errorf("decap on %s: %w", d.iface, net.ErrClosed)
	}
	s := addrKeySet(addrs)
	if err := errors.Join(s.addTo(d.addrs), s.pruneFrom(d.addrs)); err != nil {
		return fmt.Errorf("decap on %s: update: %w", d.iface, err)
	}
	return nil
}

// Stats returns the program's counters summed over all CPUs.
func (d *Decap) Stats() (DecapStats, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.closed {
		return DecapStats{}, fmt.Errorf("decap on %s: %w", d.iface, net.ErrClosed)
	}
	var c [decapCounters]uint64
	if err := progSumCounters(d.stats, c[:]); err != nil {
		return DecapStats{}, fmt.Errorf("decap on %s: stats: %w", d.iface, err)
	}
	return DecapStats{Decapsulated: c[decapDecapsulated], Passed: c[decapPassed]}, nil
}

// Close detaches the program and frees it and its maps. Further calls do
// nothing.
func (d *Decap) Close() error { return d.close("decap") }
