package sched

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
)

// Backend is one member of a pool as the scheduler sees it. ID is the
// dataplane's stable backend id (index into its backend array). Addr is IPv4
// or IPv6; an IPv4-mapped IPv6 address names the same backend as the IPv4
// address, and a zone is ignored. The zero Backend is not valid (no address).
type Backend struct {
	ID     uint32
	Addr   netip.Addr
	Port   uint16
	Weight uint32 // 0 = drained: gets no new flows
}

func (b Backend) String() string {
	return fmt.Sprintf("%v (id %d, weight %d)", netip.AddrPortFrom(b.Addr, b.Port), b.ID, b.Weight)
}

// Errors returned (wrapped) by NewMaglev and New; test with errors.Is.
var (
	ErrSize         = errors.New("invalid table size")
	ErrDuplicate    = errors.New("duplicate backend")
	ErrInvalidAddr  = errors.New("invalid backend address")
	ErrNoActive     = errors.New("least-connections needs an Active")
	ErrIDOutOfRange = errors.New("backend id beyond Active capacity")
	ErrUnknownKind  = errors.New("unknown scheduler kind")
)

// nameLen is the length of a backend's canonical name.
const nameLen = 18

// name is a backend's canonical name: the 16-byte address (IPv4 written as
// the IPv4-mapped ::ffff:a.b.c.d) followed by the port, big-endian. It feeds
// the Maglev permutation hash and defines the canonical order.
type name [nameLen]byte

func nameOf(b Backend) name {
	var n name
	a := b.Addr.As16()
	copy(n[:16], a[:])
	n[16] = byte(b.Port >> 8)
	n[17] = byte(b.Port)
	return n
}

// validatePool reports every problem in pool, each with its index: invalid
// addresses, two backends with the same (address, port), two backends with
// the same ID. Weight does not matter: a drained duplicate is still a
// configuration error.
func validatePool(pool []Backend) error {
	var errs []error
	byName := make(map[name]int, len(pool))
	byID := make(map[uint32]int, len(pool))
	for i, b := range pool {
		if !b.Addr.IsValid() {
			errs = append(errs, fmt.Errorf("pool[%d]: %w: zero address", i, ErrInvalidAddr))
			continue
		}
		n := nameOf(b)
		if j, ok := byName[n]; ok {
			errs = append(errs, fmt.Errorf("pool[%d]: %w: %v is also pool[%d]",
				i, ErrDuplicate, netip.AddrPortFrom(b.Addr.Unmap().WithZone(""), b.Port), j))
		} else {
			byName[n] = i
		}
		if j, ok := byID[b.ID]; ok {
			errs = append(errs, fmt.Errorf("pool[%d]: %w: id %d is also pool[%d]", i, ErrDuplicate, b.ID, j))
		} else {
			byID[b.ID] = i
		}
	}
	return errors.Join(errs...)
}

// member is a backend with weight > 0 and its canonical name.
type member struct {
	name   name
	id     uint32
	weight uint32
}

// canonical returns the backends of pool with weight > 0, sorted by canonical
// name (address bytes, then port). pool must have passed validatePool, so
// names are distinct and the order is total.
func canonical(pool []Backend) []member {
	ms := make([]member, 0, len(pool))
	for _, b := range pool {
		if b.Weight == 0 {
			continue
		}
		ms = append(ms, member{name: nameOf(b), id: b.ID, weight: b.Weight})
	}
	slices.SortFunc(ms, func(a, b member) int { return bytes.Compare(a.name[:], b.name[:]) })
	return ms
}

// backend rebuilds the Backend a member came from (address unmapped, no zone).
func (m member) backend() Backend {
	a := [16]byte(m.name[:16])
	return Backend{
		ID:     m.id,
		Addr:   netip.AddrFrom16(a).Unmap(),
		Port:   uint16(m.name[16])<<8 | uint16(m.name[17]),
		Weight: m.weight,
	}
}
