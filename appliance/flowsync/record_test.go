package flowsync

import (
	"bytes"
	"encoding/binary"
	"errors"
	"math"
	"net/netip"
	"testing"
	"time"
)

func TestRecordRoundTrip(t *testing.T) {
	v6a := netip.MustParseAddr("2001:db8::1")
	v6b := netip.MustParseAddr("2001:db8::2")
	mapped := netip.MustParseAddr("::ffff:192.0.2.1") // IPv6 in form, IPv4 inside: stays IPv6
	tests := []struct {
		name string
		r    Record
	}{
		{"zero", Record{}},
		{"full nat v4", rec(7)},
		{"dsr one way", Record{
			Orig:     Tuple{Src: netip.MustParseAddr("203.0.113.9"), Dst: netip.MustParseAddr("192.0.2.10"), SrcPort: 5555, DstPort: 80, Proto: 6},
			OneWay:   true,
			State:    1,
			Service:  Service{VIP: netip.MustParseAddr("192.0.2.10"), Proto: 6, Port: 80},
			Backend:  netip.MustParseAddrPort("198.51.100.1:80"),
			Owner:    65535,
			HasReply: false, Remaining: time.Millisecond,
		}},
		{"remove", func() Record { r := rec(3); r.Kind, r.State, r.Remaining = KindRemove, 0, 0; return r }()},
		{"persist template", Record{
			Orig:           Tuple{Src: netip.MustParseAddr("203.0.113.9"), Dst: netip.MustParseAddr("192.0.2.10"), DstPort: 443, Proto: 0xff},
			State:          9,
			PersistTimeout: 3600,
			Remaining:      time.Hour,
			Service:        Service{VIP: netip.MustParseAddr("192.0.2.10"), Proto: 6, Port: 443},
			Backend:        netip.MustParseAddrPort("198.51.100.1:443"),
		}},
		{"ipv6", Record{
			Orig:     Tuple{Src: v6a, Dst: v6b, SrcPort: 1, DstPort: 2, Proto: 17},
			Reply:    Tuple{Src: v6b, Dst: mapped, SrcPort: 3, DstPort: 4, Proto: 17},
			HasReply: true, State: 8, Remaining: 365 * 24 * time.Hour,
			Service: Service{VIP: v6b, Proto: 17, Port: 53},
			Backend: netip.AddrPortFrom(v6a, 53),
			Local:   mapped,
		}},
		{"mixed families", Record{
			Orig:    Tuple{Src: v6a, Dst: v6b, Proto: 6},
			Backend: netip.MustParseAddrPort("198.51.100.1:443"),
			Local:   netip.MustParseAddr("198.51.100.2"),
		}},
		{"negative remaining", Record{Remaining: -5 * time.Second}},
		{"largest remaining", Record{Remaining: time.Duration(maxRemainingMs) * time.Millisecond}},
		{"all ones", Record{Kind: KindRemove, HasReply: true, OneWay: true, State: 255, Owner: 65535, PersistTimeout: math.MaxUint32,
			Orig:    Tuple{Src: netip.MustParseAddr("255.255.255.255"), Dst: netip.MustParseAddr("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"), SrcPort: 65535, DstPort: 65535, Proto: 255},
			Service: Service{Proto: 255, Port: 65535}, Backend: netip.AddrPortFrom(netip.IPv4Unspecified(), 65535)}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			prefix := []byte{0xaa, 0xbb}
			b := tt.r.Append(bytes.Clone(prefix))
			if len(b) != len(prefix)+RecordSize || !bytes.Equal(b[:2], prefix) {
				t.Fatalf("Append: %d bytes, prefix % x", len(b), b[:2])
			}
			var got Record
			if err := got.Decode(b[2:]); err != nil {
				t.Fatalf("Decode: %v", err)
			}
			if got != tt.r {
				t.Fatalf("round trip:\n got %+v\nwant %+v", got, tt.r)
			}
			if again := got.Append(nil); !bytes.Equal(again, b[2:]) {
				t.Fatalf("re-encode differs:\n% x\n% x", again, b[2:])
			}
		})
	}
}

func TestRecordRemainingRounding(t *testing.T) {
	tests := []struct {
		in, want time.Duration
	}{
		{0, 0},
		{1, time.Millisecond},
		{time.Millisecond, time.Millisecond},
		{time.Millisecond + 1, 2 * time.Millisecond},
		{1500 * time.Microsecond, 2 * time.Millisecond},
		{-1500 * time.Microsecond, -time.Millisecond},
		{math.MaxInt64, time.Duration(maxRemainingMs) * time.Millisecond},
		{math.MinInt64, -time.Duration(maxRemainingMs) * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.in.String(), func(t *testing.T) {
			var r Record
			if err := r.Decode((&Record{Remaining: tt.in}).Append(nil)); err != nil {
				t.Fatal(err)
			}
			if r.Remaining != tt.want {
				t.Fatalf("Remaining %v -> %v, want %v", tt.in, r.Remaining, tt.want)
			}
		})
	}
}

func TestRecordDecodeRejects(t *testing.T) {
	good := rec(1)
	enc := good.Append(nil)
	tests := []struct {
		name string
		edit func(b []byte) []byte
		want error
	}{
		{"short", func(b []byte) []byte { return b[:RecordSize-1] }, ErrRecordShort},
		{"empty", func(b []byte) []byte { return nil }, ErrRecordShort},
		{"kind", func(b []byte) []byte { b[rKind] = uint8(numKinds); return b }, ErrRecordInvalid},
		{"flag bit", func(b []byte) []byte { b[rFlags] |= 0x80; return b }, ErrRecordInvalid},
		{"reserved family byte", func(b []byte) []byte { b[rFamilies+numAddrs] = 1; return b }, ErrRecordInvalid},
		{"unknown family", func(b []byte) []byte { b[rFamilies+slotVIP] = 5; return b }, ErrRecordInvalid},
		{"v4 not mapped", func(b []byte) []byte { b[rAddrs+16*slotOrigSrc] = 1; return b }, ErrRecordInvalid},
		{"v4 without ffff", func(b []byte) []byte { b[rAddrs+16*slotBackend+10] = 0; return b }, ErrRecordInvalid},
		{"none with bytes", func(b []byte) []byte {
			r := Record{}
			b = r.Append(b[:0])
			b[rAddrs+16*slotLocal+15] = 1
			return b
		}, ErrRecordInvalid},
		{"remaining overflow", func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[rRemaining:], uint64(maxRemainingMs+1))
			return b
		}, ErrRecordInvalid},
		{"remaining underflow", func(b []byte) []byte {
			binary.BigEndian.PutUint64(b[rRemaining:], 1<<63)
			return b
		}, ErrRecordInvalid},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := tt.edit(bytes.Clone(enc))
			r := rec(99)
			err := r.Decode(b)
			if !errors.Is(err, tt.want) {
				t.Fatalf("Decode = %v, want %v", err, tt.want)
			}
			if r != rec(99) {
				t.Fatalf("Decode changed the record on error")
			}
		})
	}
}

func TestKindString(t *testing.T) {
	for k, want := range map[Kind]string{KindUpdate: "update", KindRemove: "remove", 9: "kind(9)"} {
		if got := k.String(); got != want {
			t.Errorf("Kind(%d).String() = %q, want %q", k, got, want)
		}
	}
}
