package vrrp

import (
	"net/netip"
	"slices"
	"testing"
	"time"
)

// FuzzParse checks that Parse never panics, and that whatever it accepts
// marshals back to an advertisement Parse decodes to the same value.
func FuzzParse(f *testing.F) {
	f.Add(golden, uint8(TTL))
	f.Add(golden[:8], uint8(TTL))
	f.Add([]byte{0x31, 0x01, 0xff, 0x00, 0x00, 0x01, 0, 0}, uint8(TTL))
	f.Add(golden, uint8(64))
	f.Fuzz(func(t *testing.T, b []byte, ttl uint8) {
		a, err := Parse(b, srcA, MulticastGroup, ttl)
		if err != nil {
			return
		}
		out, err := a.Marshal(srcA, MulticastGroup)
		if err != nil {
			t.Fatalf("Marshal(%+v) of a parsed advert: %v", a, err)
		}
		// Only the reserved bits (and so the checksum) may differ.
		if len(out) != len(b) || !slices.Equal(out[:offInterval], b[:offInterval]) || !slices.Equal(out[offAddrs:], b[offAddrs:]) {
			t.Fatalf("Marshal(Parse(% x)) = % x", b, out)
		}
		back, err := Parse(out, srcA, MulticastGroup, TTL)
		if err != nil {
			t.Fatalf("Parse(Marshal(%+v)): %v", a, err)
		}
		if back.VRID != a.VRID || back.Priority != a.Priority || back.MaxAdvertInterval != a.MaxAdvertInterval || !slices.Equal(back.Addrs, a.Addrs) {
			t.Fatalf("round trip %+v -> %+v", a, back)
		}
	})
}

// FuzzMarshal builds adverts from fuzzed fields and checks Marshal->Parse.
func FuzzMarshal(f *testing.F) {
	f.Add(uint8(1), uint8(100), uint16(100), []byte{10, 0, 0, 100})
	f.Add(uint8(0), uint8(0), uint16(0), []byte{})
	f.Fuzz(func(t *testing.T, vrid, prio uint8, cs uint16, raw []byte) {
		a := Advert{VRID: vrid, Priority: prio, MaxAdvertInterval: time.Duration(cs) * centisecond}
		for i := 0; i+4 <= len(raw) && len(a.Addrs) < 255; i += 4 {
			a.Addrs = append(a.Addrs, netip.AddrFrom4([4]byte(raw[i:])))
		}
		b, err := a.Marshal(srcA, MulticastGroup)
		if err != nil {
			if vrid != 0 && cs >= 1 && cs <= 4095 {
				t.Fatalf("Marshal(%+v): %v", a, err)
			}
			return
		}
		back, err := Parse(b, srcA, MulticastGroup, TTL)
		if err != nil {
			t.Fatalf("Parse(Marshal(%+v)): %v", a, err)
		}
		if back.VRID != a.VRID || back.Priority != a.Priority || back.MaxAdvertInterval != a.MaxAdvertInterval || !slices.Equal(back.Addrs, a.Addrs) {
			t.Fatalf("round trip %+v -> %+v", a, back)
		}
	})
}
