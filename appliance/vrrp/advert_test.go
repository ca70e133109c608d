package vrrp

import (
	"bytes"
	"errors"
	"net/netip"
	"slices"
	"testing"
	"time"
)

var (
	srcA = netip.MustParseAddr("10.0.0.1")
	vip  = netip.MustParseAddr("10.0.0.100")
)

// golden is VRID 1, priority 100, interval 1s, one address 10.0.0.100, from
// 10.0.0.1 to 224.0.0.18. The checksum 0x75a5 was summed by hand:
// pseudo-header 0a00+0001+e000+0012+0070+000c, message 3101+6401+0064+
// 0a00+0064, total 0x18a59, folded 0x8a5a, complemented 0x75a5.
var golden = []byte{0x31, 0x01, 0x64, 0x01, 0x00, 0x64, 0x75, 0xa5, 0x0a, 0x00, 0x00, 0x64}

func TestMarshalGolden(t *testing.T) {
	a := Advert{VRID: 1, Priority: 100, MaxAdvertInterval: time.Second, Addrs: []netip.Addr{vip}}
	b, err := a.Marshal(srcA, MulticastGroup)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(b, golden) {
		t.Fatalf("Marshal = % x, want % x", b, golden)
	}
	got, err := Parse(golden, srcA, MulticastGroup, TTL)
	if err != nil {
		t.Fatal(err)
	}
	if got.VRID != 1 || got.Priority != 100 || got.MaxAdvertInterval != time.Second || !slices.Equal(got.Addrs, a.Addrs) {
		t.Fatalf("Parse = %+v, want %+v", got, a)
	}
}

func TestRoundTrip(t *testing.T) {
	tests := []struct {
		name string
		a    Advert
	}{
		{"no addresses, priority 0", Advert{VRID: 255, Priority: 0, MaxAdvertInterval: 10 * time.Millisecond}},
		{"owner, max interval", Advert{VRID: 7, Priority: 255, MaxAdvertInterval: MaxAdvertInterval, Addrs: []netip.Addr{vip}}},
		{"three addresses, 100ms", Advert{VRID: 51, Priority: 150, MaxAdvertInterval: 100 * time.Millisecond,
			Addrs: []netip.Addr{vip, netip.MustParseAddr("192.0.2.1"), netip.MustParseAddr("198.51.100.255")}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dst := netip.MustParseAddr("10.0.0.2") // unicast peer
			b, err := tt.a.Marshal(srcA, dst)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Parse(b, srcA, dst, TTL)
			if err != nil {
				t.Fatal(err)
			}
			if got.VRID != tt.a.VRID || got.Priority != tt.a.Priority || got.MaxAdvertInterval != tt.a.MaxAdvertInterval || !slices.Equal(got.Addrs, tt.a.Addrs) {
				t.Fatalf("Parse(Marshal(%+v)) = %+v", tt.a, got)
			}
			// The pseudo-header is in the checksum: another source fails.
			if _, err := Parse(b, netip.MustParseAddr("10.0.0.3"), dst, TTL); !errors.Is(err, ErrChecksum) {
				t.Fatalf("Parse with other src: err = %v, want ErrChecksum", err)
			}
		})
	}
}

func TestMarshalErrors(t *testing.T) {
	many := make([]netip.Addr, 256)
	for i := range many {
		many[i] = vip
	}
	tests := []struct {
		name     string
		a        Advert
		src, dst netip.Addr
		want     error
	}{
		{"vrid 0", Advert{MaxAdvertInterval: time.Second}, srcA, MulticastGroup, ErrVRID},
		{"interval 0", Advert{VRID: 1}, srcA, MulticastGroup, ErrInterval},
		{"interval not centiseconds", Advert{VRID: 1, MaxAdvertInterval: 15 * time.Millisecond}, srcA, MulticastGroup, ErrInterval},
		{"interval too long", Advert{VRID: 1, MaxAdvertInterval: 41 * time.Second}, srcA, MulticastGroup, ErrInterval},
		{"256 addresses", Advert{VRID: 1, MaxAdvertInterval: time.Second, Addrs: many}, srcA, MulticastGroup, ErrTooMany},
		{"ipv6 address", Advert{VRID: 1, MaxAdvertInterval: time.Second, Addrs: []netip.Addr{netip.MustParseAddr("2001:db8::1")}}, srcA, MulticastGroup, ErrAddress},
		{"ipv6 src", Advert{VRID: 1, MaxAdvertInterval: time.Second}, netip.MustParseAddr("::1"), MulticastGroup, ErrAddress},
		{"invalid dst", Advert{VRID: 1, MaxAdvertInterval: time.Second}, srcA, netip.Addr{}, ErrAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if _, err := tt.a.Marshal(tt.src, tt.dst); !errors.Is(err, tt.want) {
				t.Fatalf("Marshal: err = %v, want %v", err, tt.want)
			}
		})
	}
}

// fix returns golden with f applied and the checksum recomputed, so that
// the test reaches the check after the checksum.
func fix(f func(b []byte) []byte) []byte {
	b := f(slices.Clone(golden))
	b[offChecksum], b[offChecksum+1] = 0, 0
	s := ^checksum(b, srcA, MulticastGroup)
	b[offChecksum], b[offChecksum+1] = byte(s>>8), byte(s)
	return b
}

func TestParseErrors(t *testing.T) {
	tests := []struct {
		name string
		b    []byte
		ttl  uint8
		src  netip.Addr
		want error
	}{
		{"ttl 254", golden, 254, srcA, ErrTTL},
		{"ttl 1", golden, 1, srcA, ErrTTL},
		{"empty", nil, TTL, srcA, ErrLength},
		{"short header", golden[:7], TTL, srcA, ErrLength},
		{"truncated address", golden[:11], TTL, srcA, ErrLength},
		{"trailing byte", append(slices.Clone(golden), 0), TTL, srcA, ErrLength},
		{"count too high", fix(func(b []byte) []byte { b[offCount] = 2; return b }), TTL, srcA, ErrLength},
		{"version 2", fix(func(b []byte) []byte { b[0] = 0x21; return b }), TTL, srcA, ErrVersion},
		{"version 0", fix(func(b []byte) []byte { b[0] = 0x01; return b }), TTL, srcA, ErrVersion},
		{"type 2", fix(func(b []byte) []byte { b[0] = 0x32; return b }), TTL, srcA, ErrType},
		{"bad checksum", func() []byte { b := slices.Clone(golden); b[7] ^= 1; return b }(), TTL, srcA, ErrChecksum},
		{"priority flipped", func() []byte { b := slices.Clone(golden); b[offPriority] = 101; return b }(), TTL, srcA, ErrChecksum},
		{"other source", golden, TTL, netip.MustParseAddr("10.0.0.2"), ErrChecksum},
		{"vrid 0", fix(func(b []byte) []byte { b[offVRID] = 0; return b }), TTL, srcA, ErrVRID},
		{"interval 0", fix(func(b []byte) []byte { b[offInterval], b[offInterval+1] = 0xf0, 0; return b }), TTL, srcA, ErrInterval},
		{"ipv6 source", golden, TTL, netip.MustParseAddr("2001:db8::1"), ErrAddress},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			a, err := Parse(tt.b, tt.src, MulticastGroup, tt.ttl)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Parse: err = %v, want %v", err, tt.want)
			}
			if a.VRID != 0 || a.Addrs != nil {
				t.Fatalf("Parse returned %+v with an error", a)
			}
		})
	}
}

func TestParseIgnoresReservedBits(t *testing.T) {
	b := fix(func(b []byte) []byte { b[offInterval] |= 0xf0; return b })
	a, err := Parse(b, srcA, MulticastGroup, TTL)
	if err != nil {
		t.Fatal(err)
	}
	if a.MaxAdvertInterval != time.Second {
		t.Fatalf("interval = %v, want 1s", a.MaxAdvertInterval)
	}
}

func BenchmarkParse(b *testing.B) {
	b.ReportAllocs()
	for b.Loop() {
		if _, err := Parse(golden, srcA, MulticastGroup, TTL); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkMarshal(b *testing.B) {
	a := Advert{VRID: 1, Priority: 100, MaxAdvertInterval: time.Second, Addrs: []netip.Addr{vip}}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := a.Marshal(srcA, MulticastGroup); err != nil {
			b.Fatal(err)
		}
	}
}
