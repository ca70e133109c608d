//go:build linux

package nic

import (
	"errors"
	"fmt"
	"net"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/link"
)

// Steering is the steering XDP program and its maps, attached to one
// interface as a bpf_link (the decision table is in steer.go). The link is
// never pinned: the kernel detaches the program when Close is called or
// when the process dies, even by SIGKILL. The interface name is resolved
// once, in the network namespace of the thread calling NewSteering.
//
// Its methods are safe for concurrent use and serialized with each other.
// The program reads the maps while they change: each frame sees each map
// entry either before or after a change. There is no useful zero value:
// use NewSteering.
type Steering struct {
	progAttachment
	queues int

	services, locals, vips, xsks, stats *ebpf.Map
}

// NewSteering loads the steering program for an interface with the given
// number of receive queues and attaches it to iface: in native mode, or in
// generic mode when native fails (Mode reports which). The maps start
// empty, so until Update the program passes everything to the kernel.
func NewSteering(iface string, queues int) (*Steering, error) {
	return newSteering(iface, queues, AttachAuto)
}

func newSteering(iface string, queues int, mode AttachMode) (*Steering, error) {
	s, err := loadSteering(iface, queues)
	if err != nil {
		return nil, err
	}
	s.link, s.mode, err = progAttach(s.prog, iface, mode)
	if err != nil {
		s.coll.Close()
		return nil, fmt.Errorf("steering on %s: %w", iface, err)
	}
	return s, nil
}

// loadSteering loads the program and its maps without attaching them;
// iface only names the Steering in errors.
func loadSteering(iface string, queues int) (*Steering, error) {
	if queues < 1 {
		return nil, fmt.Errorf("steering on %s: %d queues: need at least one", iface, queues)
	}
	coll, err := ebpf.NewCollection(steerSpec(queues))
	if err != nil {
		return nil, fmt.Errorf("steering on %s: load: %w", iface, err)
	}
	return &Steering{
		progAttachment: progAttachment{iface: iface, coll: coll, prog: coll.Programs[steerProgName]},
		queues:         queues,
		services:       coll.Maps[steerMapServices],
		locals:         coll.Maps[steerMapLocals],
		vips:           coll.Maps[steerMapVIPs],
		xsks:           coll.Maps[steerMapXSKs],
		stats:          coll.Maps[steerMapStats],
	}, nil
}

// progAttach attaches an XDP program to the interface named iface (see
// AttachXDP). The interface name is resolved in the calling thread's
// network namespace.
func progAttach(prog *ebpf.Program, iface string, mode AttachMode) (link.Link, AttachMode, error) {
	ifi, err := net.InterfaceByName(iface)
	if err != nil {
		return nil, 0, fmt.Errorf("attach: %w", err)
	}
	return AttachXDP(prog, ifi.Index, mode)
}

// AttachXDP attaches the XDP program prog to the interface with index
// ifindex, in the calling thread's network namespace, as a bpf_link in
// mode; AttachAuto tries native, then generic. It returns the mode it
// attached in.
func AttachXDP(prog *ebpf.Program, ifindex int, mode AttachMode) (link.Link, AttachMode, error) {
	try := func(m AttachMode) (link.Link, error) {
		flags := link.XDPDriverMode
		if m == AttachGeneric {
			flags = link.XDPGenericMode
		}
		l, err := link.AttachXDP(link.XDPOptions{Program: prog, Interface: ifindex, Flags: flags})
		if err != nil {
			return nil, fmt.Errorf("attach %s mode: %w", m, err)
		}
		return l, nil
	}
	switch mode {
	case AttachNative, AttachGeneric:
		l, err := try(mode)
		return l, mode, err
	case AttachAuto:
		l, nerr := try(AttachNative)
		if nerr == nil {
			return l, AttachNative, nil
		}
		l, gerr := try(AttachGeneric)
		if gerr == nil {
			return l, AttachGeneric, nil
		}
		return nil, 0, errors.Join(nerr, gerr)
	}
	return nil, 0, fmt.Errorf("attach: unknown mode %v", mode)
}

// Mode returns the mode the program was attached in: AttachNative or
// AttachGeneric.
func (s *Steering) Mode() AttachMode { return s.mode }

// SetSocket makes frames received on queue go to the AF_XDP socket fd, or,
// with fd < 0, to no socket (they pass to the kernel and count as
// redirect-failed). The socket must be bound to this interface and queue,
// or the kernel drops what is redirected to it. The kernel removes a
// socket's entry itself when the socket is closed.
func (s *Steering) SetSocket(queue int, fd int) error {
	if queue < 0 || queue >= s.queues {
		return fmt.Errorf("steering on %s: queue %d: have queues 0-%d", s.iface, queue, s.queues-1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("steering on %s: %w", s.iface, net.ErrClosed)
	}
	var err error
	if fd < 0 {
		err = s.xsks.Delete(uint32(queue))
		if errors.Is(err, ebpf.ErrKeyNotExist) {
			err = nil
		}
	} else {
		err = s.xsks.Update(uint32(queue), uint32(fd), ebpf.UpdateAny)
	}
	if err != nil {
		return fmt.Errorf("steering on %s: socket for queue %d: %w", s.iface, queue, err)
	}
	return nil
}

// Update makes the maps hold exactly the given VIPs, services and local
// addresses. It adds every new key to every map first and deletes the
// stale ones after, so a frame for something present both before and after
// is never passed to the kernel midway. If it fails, the maps may hold a
// mix of old and new keys (never less than the new set where the adds
// succeeded); call it again.
//
// Each service's protocol must be TCP (6) or UDP (17) and its port
// non-zero. Duplicates are allowed.
func (s *Steering) Update(vips [][4]byte, services []SteerService, locals [][4]byte) error {
	var errs []error
	if len(vips) > SteerMaxVIPs {
		errs = append(errs, fmt.Errorf("vips: %d addresses, at most %d", len(vips), SteerMaxVIPs))
	}
	if len(locals) > SteerMaxLocals {
		errs = append(errs, fmt.Errorf("locals: %d addresses, at most %d", len(locals), SteerMaxLocals))
	}
	if len(services) > SteerMaxServices {
		errs = append(errs, fmt.Errorf("services: %d services, at most %d", len(services), SteerMaxServices))
	}
	for i, sv := range services {
		if sv.Proto != progProtoTCP && sv.Proto != progProtoUDP {
			errs = append(errs, fmt.Errorf("services[%d]: %v: protocol is not TCP or UDP", i, sv))
		}
		if sv.Port == 0 {
			errs = append(errs, fmt.Errorf("services[%d]: %v: port 0", i, sv))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("steering on %s: update: %w", s.iface, err)
	}

	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return fmt.Errorf("steering on %s: %w", s.iface, net.ErrClosed)
	}
	want := []struct {
		name string
		m    *ebpf.Map
		keys progKeySet
	}{
		{"locals", s.locals, addrKeySet(locals)},
		{"vips", s.vips, addrKeySet(vips)},
		{"services", s.services, serviceKeySet(services)},
	}
	for _, w := range want {
		if err := w.keys.addTo(w.m); err != nil {
			return fmt.Errorf("steering on %s: update %s: %w", s.iface, w.name, err)
		}
	}
	for _, w := range want {
		if err := w.keys.pruneFrom(w.m); err != nil {
			return fmt.Errorf("steering on %s: update %s: %w", s.iface, w.name, err)
		}
	}
	return nil
}

// progKeySet is a set of map keys of one size, held as strings.
type progKeySet map[string]struct{}

// addrKeySet returns the set of addresses as keys of an address map.
func addrKeySet(addrs [][4]byte) progKeySet {
	s := make(progKeySet, len(addrs))
	for _, a := range addrs {
		s[string(a[:])] = struct{}{}
	}
	return s
}

// serviceKeySet returns the set of services as keys of the services map.
func serviceKeySet(svcs []SteerService) progKeySet {
	s := make(progKeySet, len(svcs))
	for _, sv := range svcs {
		k := makeSteerServiceKey(sv)
		s[string(k[:])] = struct{}{}
	}
	return s
}

// addTo puts every key of s into m with value 1.
func (s progKeySet) addTo(m *ebpf.Map) error {
	for k := range s {
		if err := m.Update([]byte(k), uint8(1), ebpf.UpdateAny); err != nil {
			return err
		}
	}
	return nil
}

// pruneFrom deletes from m every key not in s.
func (s progKeySet) pruneFrom(m *ebpf.Map) error {
	var stale [][]byte
	var k []byte // each Next stores a fresh slice
	var v uint8
	it := m.Iterate()
	for it.Next(&k, &v) {
		if _, ok := s[string(k)]; !ok {
			stale = append(stale, k)
		}
	}
	if err := it.Err(); err != nil {
		return err
	}
	for _, k := range stale {
		if err := m.Delete(k); err != nil && !errors.Is(err, ebpf.ErrKeyNotExist) {
			return err
		}
	}
	return nil
}

// Stats returns the program's counters summed over all CPUs.
func (s *Steering) Stats() (SteerStats, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return SteerStats{}, fmt.Errorf("steering on %s: %w", s.iface, net.ErrClosed)
	}
	var c [steerCounters]uint64
	if err := progSumCounters(s.stats, c[:]); err != nil {
		return SteerStats{}, fmt.Errorf("steering on %s: stats: %w", s.iface, err)
	}
	return SteerStats{
		Redirected:     c[steerRedirected],
		Passed:         c[steerPassed],
		RedirectFailed: c[steerRedirectFailed],
	}, nil
}

// progSumCounters reads a per-CPU array of uint64 counters into c, one
// sum over CPUs per index.
func progSumCounters(m *ebpf.Map, c []uint64) error {
	var perCPU []uint64
	for i := range c {
		if err := m.Lookup(uint32(i), &perCPU); err != nil {
			return err
		}
		c[i] = 0
		for _, v := range perCPU {
			c[i] += v
		}
	}
	return nil
}

// Close detaches the program and frees it and its maps. Further calls do
// nothing.
func (s *Steering) Close() error { return s.close("steering") }
