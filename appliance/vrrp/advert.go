package vrrp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"time"

	"github.com/culvert-lb/culvert/internal/header"
)

// Wire constants of RFC 5798.
const (
	// Version is the VRRP version this package speaks.
	Version = 3
	// TypeAdvertisement is the only packet type VRRP version 3 defines.
	TypeAdvertisement = 1
	// IPProtocol is the IP protocol number of VRRP.
	IPProtocol = 112
	// TTL is the IP TTL every advertisement is sent with and must arrive with
	// (RFC 5798 section 5.1.1.3).
	TTL = 255
	// AdvertMinimumSize is the size of the fixed part of an advertisement.
	AdvertMinimumSize = 8
	// MaxAdvertInterval is the largest interval the 12-bit field carries
	// (4095 centiseconds).
	MaxAdvertInterval = 4095 * centisecond
	// MinAdvertInterval is the wire granularity and the smallest interval.
	MinAdvertInterval = centisecond
)

// MulticastGroup is the IPv4 multicast address advertisements go to
// (RFC 5798 section 5.1.1.2).
var MulticastGroup = netip.AddrFrom4([4]byte{224, 0, 0, 18})

const centisecond = 10 * time.Millisecond

// Offsets in the VRRP header; unexported as the house style asks.
const (
	offVersionType = 0
	offVRID        = 1
	offPriority    = 2
	offCount       = 3
	offInterval    = 4
	offChecksum    = 6
	offAddrs       = 8
)

// Errors returned by Parse and Marshal. Callers branch with errors.Is; the
// returned error wraps one of these with the offending value.
var (
	ErrTTL      = errors.New("vrrp: ip ttl is not 255")
	ErrLength   = errors.New("vrrp: length does not match the address count")
	ErrVersion  = errors.New("vrrp: version is not 3")
	ErrType     = errors.New("vrrp: type is not advertisement")
	ErrChecksum = errors.New("vrrp: bad checksum")
	ErrVRID     = errors.New("vrrp: virtual router id 0")
	ErrInterval = errors.New("vrrp: advertisement interval out of range")
	ErrAddress  = errors.New("vrrp: address is not ipv4")
	ErrTooMany  = errors.New("vrrp: more than 255 addresses")
)

// Advert is a decoded VRRP version 3 advertisement for IPv4
// (RFC 5798 section 5.1). Its zero value is not a valid advertisement: VRID
// and MaxAdvertInterval must be set before Marshal.
//
// The payload that follows the IPv4 header:
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version| Type  | Virtual Rtr ID|   Priority    |Count IPvX Addr|
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|(rsvd) |     Max Adver Int     |          Checksum             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                                                               |
//	+                                                               +
//	|                       IPvX Address(es)                        |
//	+                                                               +
//	+                                                               +
//	+                                                               +
//	+                                                               +
//	|                                                               |
//	+                                                               +
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// Version is 3 and Type is 1. Max Adver Int is in centiseconds. The checksum
// is the Internet checksum of the VRRP message plus the IPv4 pseudo-header
// (source, destination, zero, protocol 112, VRRP length), RFC 5798
// section 5.2.8.
type Advert struct {
	VRID     uint8
	Priority uint8
	// MaxAdvertInterval is carried in centiseconds, 12 bits: a multiple of
	// 10ms from 10ms to 40.95s.
	MaxAdvertInterval time.Duration
	// Addrs are the virtual IPv4 addresses, at most 255.
	Addrs []netip.Addr
}

// Marshal encodes a as the VRRP payload of an IPv4 packet from src to dst
// (dst is 224.0.0.18 for multicast or a peer for unicast); both addresses
// enter the checksum. It allocates the returned slice.
func (a *Advert) Marshal(src, dst netip.Addr) ([]byte, error) {
	return a.appendMarshal(nil, src, dst)
}

// appendMarshal is Marshal appending to b; it allocates only when b lacks
// the room, and on error.
func (a *Advert) appendMarshal(b []byte, src, dst netip.Addr) ([]byte, error) {
	if !src.Is4() || !dst.Is4() {
		return nil, fmt.Errorf("marshal: src %v dst %v: %w", src, dst, ErrAddress)
	}
	if a.VRID == 0 {
		return nil, fmt.Errorf("marshal: %w", ErrVRID)
	}
	cs, ok := centiseconds(a.MaxAdvertInterval)
	if !ok {
		return nil, fmt.Errorf("marshal: interval %v: %w", a.MaxAdvertInterval, ErrInterval)
	}
	if len(a.Addrs) > 255 {
		return nil, fmt.Errorf("marshal: %d addresses: %w", len(a.Addrs), ErrTooMany)
	}
	for i, addr := range a.Addrs {
		if !addr.Is4() {
			return nil, fmt.Errorf("marshal: addrs[%d] %v: %w", i, addr, ErrAddress)
		}
	}
	start := len(b)
	b = slices.Grow(b, AdvertMinimumSize+4*len(a.Addrs))[:start+AdvertMinimumSize+4*len(a.Addrs)]
	m := b[start:]
	m[offVersionType] = Version<<4 | TypeAdvertisement
	m[offVRID] = a.VRID
	m[offPriority] = a.Priority
	m[offCount] = uint8(len(a.Addrs))
	binary.BigEndian.PutUint16(m[offInterval:], cs)
	binary.BigEndian.PutUint16(m[offChecksum:], 0)
	for i, addr := range a.Addrs {
		a4 := addr.As4()
		copy(m[offAddrs+4*i:], a4[:])
	}
	binary.BigEndian.PutUint16(m[offChecksum:], ^checksum(m, src, dst))
	return b, nil
}

// Parse decodes the VRRP payload b of an IPv4 packet from src to dst that
// arrived with IP TTL ipTTL, applying the receive checks of RFC 5798
// section 7.1: TTL 255, version 3, type 1, length matching the address
// count, checksum, a non-zero VRID and a non-zero interval. The reserved
// bits are ignored. The returned Addrs is freshly allocated; b is not
// retained.
func Parse(b []byte, src, dst netip.Addr, ipTTL uint8) (Advert, error) {
	if r := check(b, src, dst, ipTTL); r != RejectNone {
		return Advert{}, parseError(r, b, src, dst, ipTTL)
	}
	return decode(b, nil), nil
}

// check applies Parse's checks, in Parse's order, and returns the first
// that fails or RejectNone. It does not allocate; the Router runs it on
// every received packet.
func check(b []byte, src, dst netip.Addr, ipTTL uint8) RejectReason {
	switch {
	case ipTTL != TTL:
		return RejectTTL
	case !src.Is4() || !dst.Is4():
		return RejectAddress
	case len(b) < AdvertMinimumSize:
		return RejectShort
	case b[offVersionType]>>4 != Version:
		return RejectVersion
	case b[offVersionType]&0x0f != TypeAdvertisement:
		return RejectType
	case len(b) != AdvertMinimumSize+4*int(b[offCount]):
		return RejectLength
	case checksum(b, src, dst) != 0xffff:
		return RejectChecksum
	case b[offVRID] == 0:
		return RejectVRIDZero
	case binary.BigEndian.Uint16(b[offInterval:])&0x0fff == 0:
		return RejectInterval
	}
	return RejectNone
}

// parseError is Parse's error for reason r, naming the offending value.
func parseError(r RejectReason, b []byte, src, dst netip.Addr, ipTTL uint8) error {
	switch r {
	case RejectTTL:
		return fmt.Errorf("parse: ttl %d: %w", ipTTL, ErrTTL)
	case RejectAddress:
		return fmt.Errorf("parse: src %v dst %v: %w", src, dst, ErrAddress)
	case RejectShort:
		return fmt.Errorf("parse: %d bytes: %w", len(b), ErrLength)
	case RejectVersion:
		return fmt.Errorf("parse: version %d: %w", b[offVersionType]>>4, ErrVersion)
	case RejectType:
		return fmt.Errorf("parse: type %d: %w", b[offVersionType]&0x0f, ErrType)
	case RejectLength:
		return fmt.Errorf("parse: %d bytes for %d addresses: %w", len(b), b[offCount], ErrLength)
	case RejectChecksum:
		return fmt.Errorf("parse: sum %#04x: %w", checksum(b, src, dst), ErrChecksum)
	case RejectVRIDZero:
		return fmt.Errorf("parse: %w", ErrVRID)
	case RejectInterval:
		return fmt.Errorf("parse: interval 0: %w", ErrInterval)
	}
	panic(fmt.Sprintf("vrrp: parseError(%v)", r)) // check returns only the reasons above
}

// decode reads the advertisement in b, which passed check. Addrs reuses
// addrs' storage when it is large enough (then nothing is allocated) and is
// nil when b carries no address.
func decode(b []byte, addrs []netip.Addr) Advert {
	a := Advert{
		VRID:              b[offVRID],
		Priority:          b[offPriority],
		MaxAdvertInterval: time.Duration(binary.BigEndian.Uint16(b[offInterval:])&0x0fff) * centisecond,
	}
	if n := int(b[offCount]); n > 0 {
		a.Addrs = slices.Grow(addrs[:0], n)[:n]
		for i := range a.Addrs {
			a.Addrs[i] = netip.AddrFrom4([4]byte(b[offAddrs+4*i:]))
		}
	}
	return a
}

// centiseconds converts d to the 12-bit wire value; ok is false when d is
// not a whole number of centiseconds in [1, 4095].
func centiseconds(d time.Duration) (uint16, bool) {
	if d < MinAdvertInterval || d > MaxAdvertInterval || d%centisecond != 0 {
		return 0, false
	}
	return uint16(d / centisecond), true
}

// checksum returns the one's complement sum (not complemented) of the IPv4
// pseudo-header for a VRRP message of len(b) bytes and of b itself. A
// message with a correct checksum field sums to 0xffff.
func checksum(b []byte, src, dst netip.Addr) uint16 {
	ph := header.PseudoHeaderChecksum4(IPProtocol, src.As4(), dst.As4(), uint16(len(b)))
	return header.Checksum(b, uint32(ph))
}
