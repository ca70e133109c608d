package vrrp

import (
	"errors"
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

// FuzzReceive feeds whole IPv4 packets, as the raw socket delivers them, to
// a Router's receive path. Properties: it never panics; every packet is
// counted exactly once (accepted by one group, or under one reject
// reason); an accepted packet is one Parse accepts with the same fields;
// and a packet rejected by a Parse check is one Parse rejects with the
// matching error.
func FuzzReceive(f *testing.F) {
	peer := netip.MustParseAddr("198.18.5.2")
	vips := []netip.Addr{netip.MustParseAddr("198.18.5.100")}
	f.Add(advPacket(f, peer, 7, 100, vips, nil))
	f.Add(advPacket(f, peer, 8, 100, vips, nil))
	f.Add(advPacket(f, peer, 8, 255, nil, nil))
	f.Add(advPacket(f, peer, 9, 100, vips, nil))
	f.Add(advPacket(f, peer, 7, 100, vips, func(b []byte) bool { b[offChecksum] ^= 1; return false }))
	f.Add(ipv4Packet(peer, MulticastGroup, 64, golden))
	f.Add(ipv4Packet(peer, MulticastGroup, TTL, golden[:5]))
	f.Add(advPacket(f, netip.MustParseAddr("198.18.5.1"), 7, 100, vips, nil))
	f.Add([]byte{0x45})

	cfg := routerConfig(fastGroup(7, 100), fastGroup(8, 100))
	cfg.Groups[1].CheckAddrs = true
	cfg.Interface, cfg.Addr = "fuzz0", netip.MustParseAddr("198.18.5.1")
	r, err := newRouter(cfg, nil, nil, new(memLink).port(cfg.Addr), nil, nil)
	if err != nil {
		f.Fatal(err)
	}
	total := func() uint64 {
		s := r.Snapshot()
		var n uint64
		for i := range NumRejectReasons {
			n += s.Rejects[i]
			for _, g := range s.Groups {
				n += g.Rejects[i]
			}
		}
		for _, g := range s.Groups {
			n += g.AdvertsReceived
		}
		return n
	}
	parseErr := map[RejectReason]error{
		RejectTTL: ErrTTL, RejectShort: ErrLength, RejectVersion: ErrVersion, RejectType: ErrType,
		RejectLength: ErrLength, RejectChecksum: ErrChecksum, RejectVRIDZero: ErrVRID, RejectInterval: ErrInterval,
	}
	f.Fuzz(func(t *testing.T, pkt []byte) {
		before := total()
		_, reason, _, m := r.classify(pkt)
		got, ok := r.receive(pkt)
		if after := total(); after != before+1 {
			t.Fatalf("packet counted %d times", after-before)
		}
		if ok != (reason == RejectNone) || got != m {
			t.Fatalf("receive %v %+v, classify %v %+v", ok, got, reason, m)
		}
		d, hdr := splitIPv4(pkt)
		if hdr != RejectNone {
			if reason != RejectIPHeader {
				t.Fatalf("bad header classified %v", reason)
			}
			return
		}
		a, err := Parse(d.Payload, d.Src, d.Dst, d.TTL)
		if want, ok := parseErr[reason]; ok {
			if !errors.Is(err, want) {
				t.Fatalf("classified %v, Parse says %v", reason, err)
			}
			return
		}
		if err != nil {
			t.Fatalf("classified %v, Parse says %v", reason, err)
		}
		if reason == RejectNone && (a.VRID != m.vrid || a.Priority != m.priority || a.MaxAdvertInterval != m.interval || m.from != d.Src) {
			t.Fatalf("delivered %+v, Parse says %+v", m, a)
		}
	})
}
