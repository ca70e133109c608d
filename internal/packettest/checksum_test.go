package packettest

import (
	"encoding/binary"
	"math/rand/v2"
	"testing"
)

func TestChecksum(t *testing.T) {
	tests := []struct {
		name    string
		b       []byte
		initial uint32
		want    uint16
	}{
		// RFC 1071 section 3: the words sum to 0x2ddf0, folding to 0xddf2.
		{"rfc1071 example", []byte{0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7}, 0, ^uint16(0xddf2)},
		{"empty", nil, 0, 0xffff},
		{"odd byte is high byte", []byte{0x01}, 0, ^uint16(0x0100)},
		{"odd tail", []byte{0x12, 0x34, 0x56}, 0, ^uint16(0x1234 + 0x5600)},
		{"initial added", []byte{0x00, 0x01}, 0x0002, ^uint16(0x0003)},
		{"carry folded twice", nil, 0x1ffff, ^uint16(0x0001)},
		{"all ones is negative zero", []byte{0xff, 0xff}, 0, 0},
		// An IPv4 header from RFC 1071's era of examples, checksum b861.
		{"ipv4 header", []byte{
			0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11,
			0x00, 0x00, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
		}, 0, 0xb861},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := Checksum(tt.b, tt.initial); got != tt.want {
				t.Errorf("Checksum(% x, %#x) = %#04x, want %#04x", tt.b, tt.initial, got, tt.want)
			}
		})
	}
}

// TestChecksumVerifies checks the property the checkers rely on: data
// followed by its own checksum sums to zero.
func TestChecksumVerifies(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for range 1000 {
		n := 2 * rng.IntN(800)
		b := make([]byte, n, n+2)
		for i := range b {
			b[i] = byte(rng.Uint32())
		}
		initial := rng.Uint32() >> 8
		b = binary.BigEndian.AppendUint16(b, Checksum(b, initial))
		if got := Checksum(b, initial); got != 0 {
			t.Fatalf("Checksum over data and its checksum = %#04x, want 0 (data % x)", got, b)
		}
	}
}

func TestPseudoHeaderSum(t *testing.T) {
	src := []byte{198, 18, 0, 10}
	dst := []byte{198, 18, 1, 1}
	want := uint32(0xc612+0x000a+0xc612+0x0101) + 17 + 0x1_0004>>16 + 0x0004
	if got := pseudoHeaderSum(src, dst, 17, 0x1_0004); got != want {
		t.Errorf("pseudoHeaderSum = %#x, want %#x", got, want)
	}
}
