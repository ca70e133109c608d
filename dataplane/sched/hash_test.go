package sched

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

// TestSipHashReferenceVectors checks sipHash24 against the SipHash-2-4
// reference vectors (key 00..0f, message 00..n-1): vectors.h of the reference
// implementation for n = 0..9 and the paper's worked example for n = 15.
func TestSipHashReferenceVectors(t *testing.T) {
	tests := []struct {
		n    int
		want uint64
	}{
		{0, 0x726fdb47dd0e0e31},
		{1, 0x74f839c593dc67fd},
		{2, 0x0d6c8009d9a94f5a},
		{3, 0x85676696d7fb7e2d},
		{4, 0xcf2794e0277187b7},
		{5, 0x18765564cd99a68d},
		{6, 0xcbc9466e58fee3ce},
		{7, 0xab0200f58b01d137},
		{8, 0x93f5f5799a932462},
		{9, 0x9e0082df0ba9e4b0},
		{15, 0xa129ca6149be45e5},
	}
	msg := make([]byte, 64)
	for i := range msg {
		msg[i] = byte(i)
	}
	for _, tt := range tests {
		t.Run("", func(t *testing.T) {
			if got := sipHash24(&testKey, msg[:tt.n]); got != tt.want {
				t.Errorf("sipHash24(len %d) = %#016x, want %#016x", tt.n, got, tt.want)
			}
		})
	}
}

// flow4Bytes and flow6Bytes are the byte strings the package doc says the
// flow hashes cover.
func flow4Bytes(src, dst [4]byte, sport, dport uint16, proto uint8) []byte {
	b := append(src[:], dst[:]...)
	b = binary.BigEndian.AppendUint16(b, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	return append(b, proto)
}

func flow6Bytes(src, dst [16]byte, sport, dport uint16, proto uint8) []byte {
	b := append(src[:], dst[:]...)
	b = binary.BigEndian.AppendUint16(b, sport)
	b = binary.BigEndian.AppendUint16(b, dport)
	return append(b, proto)
}

func TestFlowHashMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for range 10000 {
		var k HashKey
		var s4, d4 [4]byte
		var s6, d6 [16]byte
		for _, b := range [][]byte{k[:], s4[:], d4[:], s6[:], d6[:]} {
			for i := range b {
				b[i] = byte(r.Uint32())
			}
		}
		sp, dp, pr := uint16(r.Uint32()), uint16(r.Uint32()), uint8(r.Uint32())
		if got, want := FlowHash4(&k, s4, d4, sp, dp, pr), sipHash24(&k, flow4Bytes(s4, d4, sp, dp, pr)); got != want {
			t.Fatalf("FlowHash4(%x, %v, %v, %d, %d, %d) = %#x, reference %#x", k, s4, d4, sp, dp, pr, got, want)
		}
		if got, want := FlowHash6(&k, s6, d6, sp, dp, pr), sipHash24(&k, flow6Bytes(s6, d6, sp, dp, pr)); got != want {
			t.Fatalf("FlowHash6(%x, %v, %v, %d, %d, %d) = %#x, reference %#x", k, s6, d6, sp, dp, pr, got, want)
		}
	}
}

// TestFlowHashGolden pins FlowHash4 and FlowHash6 values. Two appliances
// running different builds must agree on these; a change here breaks HA
// failover and ECMP scale-out between versions (see doc.go).
func TestFlowHashGolden(t *testing.T) {
	v6a := [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}
	v6b := [16]byte{0x20, 0x01, 0x0d, 0xb8, 0, 1, 15: 0x80}
	tests := []struct {
		name string
		got  uint64
		want uint64
	}{
		{"v4 tcp", FlowHash4(&testKey, [4]byte{198, 51, 100, 7}, [4]byte{192, 0, 2, 1}, 40000, 443, 6), 0xb2a2e639c5d5d52f},
		{"v4 udp", FlowHash4(&testKey, [4]byte{198, 51, 100, 7}, [4]byte{192, 0, 2, 1}, 40000, 443, 17), 0x4697a105772d5de3},
		{"v4 sport+1", FlowHash4(&testKey, [4]byte{198, 51, 100, 7}, [4]byte{192, 0, 2, 1}, 40001, 443, 6), 0xd01a77bda03cb713},
		{"v4 zero", FlowHash4(&testKey, [4]byte{}, [4]byte{}, 0, 0, 0), 0xe3a06a40c25e2e82},
		{"v4 zero key", FlowHash4(&HashKey{}, [4]byte{198, 51, 100, 7}, [4]byte{192, 0, 2, 1}, 40000, 443, 6), 0x7518d779b1718d07},
		{"v6 tcp", FlowHash6(&testKey, v6b, v6a, 40000, 443, 6), 0xbd88d6e5e4822ed2},
		{"v6 zero", FlowHash6(&testKey, [16]byte{}, [16]byte{}, 0, 0, 0), 0x6c4252b90e3d4e16},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.got != tt.want {
				t.Errorf("got %#016x, want %#016x", tt.got, tt.want)
			}
		})
	}
}

// TestFlowHashFieldsMatter flips each input field in turn: every one must
// change the hash, and so must the key.
func TestFlowHashFieldsMatter(t *testing.T) {
	src, dst := [4]byte{198, 51, 100, 7}, [4]byte{192, 0, 2, 1}
	base := FlowHash4(&testKey, src, dst, 40000, 443, 6)
	k2 := testKey
	k2[15] ^= 1
	src2, dst2 := src, dst
	src2[3] ^= 1
	dst2[0] ^= 0x80
	tests := []struct {
		name string
		h    uint64
	}{
		{"key", FlowHash4(&k2, src, dst, 40000, 443, 6)},
		{"src", FlowHash4(&testKey, src2, dst, 40000, 443, 6)},
		{"dst", FlowHash4(&testKey, src, dst2, 40000, 443, 6)},
		{"sport", FlowHash4(&testKey, src, dst, 40000^0x100, 443, 6)},
		{"dport", FlowHash4(&testKey, src, dst, 40000, 444, 6)},
		{"proto", FlowHash4(&testKey, src, dst, 40000, 443, 17)},
		{"swapped", FlowHash4(&testKey, dst, src, 443, 40000, 6)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.h == base {
				t.Errorf("changing %s left the hash at %#x", tt.name, base)
			}
		})
	}
}

func TestParseHashKey(t *testing.T) {
	tests := []struct {
		in      string
		want    HashKey
		wantErr bool
	}{
		{"000102030405060708090a0b0c0d0e0f", testKey, false},
		{"000102030405060708090A0B0C0D0E0F", testKey, false},
		{"00000000000000000000000000000000", HashKey{}, false},
		{"000102030405060708090a0b0c0d0e", HashKey{}, true},
		{"000102030405060708090a0b0c0d0e0f00", HashKey{}, true},
		{"zz0102030405060708090a0b0c0d0e0f", HashKey{}, true},
		{"", HashKey{}, true},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			got, err := ParseHashKey(tt.in)
			if (err != nil) != tt.wantErr || got != tt.want {
				t.Fatalf("ParseHashKey(%q) = %x, %v; want %x, error %v", tt.in, got, err, tt.want, tt.wantErr)
			}
			if err != nil {
				return
			}
			text, _ := got.MarshalText()
			var back HashKey
			if err := back.UnmarshalText(text); err != nil || back != got {
				t.Errorf("round trip via %q = %x, %v", text, back, err)
			}
		})
	}
}
