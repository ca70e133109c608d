package conntrack

import (
	"encoding/binary"
	"math/bits"
	"unsafe"
)

// The flow keys are hashed and compared as little-endian 64-bit words read
// straight from their bytes. Reading through *[N]byte (alignment 1) and
// binary.LittleEndian keeps checkptr quiet for keys at any alignment; on
// amd64 and arm64 each read compiles to one unaligned 8-byte load.
//
// Both key layouts end with an 8-byte word holding SrcPort, DstPort, Proto
// and three bytes of padding; tailMask keeps the first five bytes so the
// padding never reaches the hash or the comparison, matching the language's
// == on the structs (which ignores blank fields).
const tailMask = 0x0000_00ff_ffff_ffff

func init() {
	// The layout assumptions above, checked once.
	if unsafe.Sizeof(Key4{}) != Key4Size || unsafe.Sizeof(Key6{}) != Key6Size ||
		unsafe.Offsetof(Key4{}.SrcPort) != Key4Size-8 || unsafe.Offsetof(Key6{}.SrcPort) != Key6Size-8 ||
		unsafe.Offsetof(Key4{}.Proto) != Key4Size-4 || unsafe.Offsetof(Key6{}.Proto) != Key6Size-4 {
		panic("conntrack: unexpected key layout")
	}
}

func le64(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }

// hasher holds the per-table secret for the flow hash.
//
// The hash is a folded-multiply construction: each pair of key words is
// xored with secret words and multiplied to 128 bits, whose halves are
// xored together; a last fold with another secret word spreads every input
// bit over both the low bits (bucket index) and the high 32 bits (tag).
// Keys chosen by an attacker who does not know the secret spread like
// random ones. Key4: 2 multiplies; Key6: 4.
type hasher struct{ k [8]uint64 }

func newHasher(seed uint64) hasher {
	var h hasher
	x := seed
	for i := range h.k {
		// splitmix64 steps: distinct, well mixed odd-ish words from one seed.
		x += 0x9e3779b97f4a7c15
		z := x
		z = (z ^ z>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		h.k[i] = z ^ z>>31 | 1
	}
	return h
}

func fold(a, b uint64) uint64 {
	hi, lo := bits.Mul64(a, b)
	return hi ^ lo
}

func (s *hasher) hash4(w0, w1 uint64) uint64 {
	return fold(fold(w0^s.k[0], w1^s.k[1])^s.k[2], s.k[3])
}

func (s *hasher) hash6(w0, w1, w2, w3, w4 uint64) uint64 {
	a := fold(w0^s.k[0], w1^s.k[1])
	b := fold(w2^s.k[2], w3^s.k[3])
	c := fold(a^s.k[4], b^w4^s.k[5])
	return fold(c^s.k[6], s.k[7])
}

// hashKey hashes a key of either size. unsafe.Sizeof of the type parameter
// is a constant in each shape instantiation, so the branch folds away.
func hashKey[K Key](s *hasher, k *K) uint64 {
	if unsafe.Sizeof(*k) == Key4Size {
		b := (*[Key4Size]byte)(unsafe.Pointer(k))
		return s.hash4(le64(b[0:8]), le64(b[8:16])&tailMask)
	}
	b := (*[Key6Size]byte)(unsafe.Pointer(k))
	return s.hash6(le64(b[0:8]), le64(b[8:16]), le64(b[16:24]), le64(b[24:32]), le64(b[32:40])&tailMask)
}

// keyEqual reports whether a and b are the same flow key (padding ignored).
func keyEqual[K Key](a, b *K) bool {
	if unsafe.Sizeof(*a) == Key4Size {
		x := (*[Key4Size]byte)(unsafe.Pointer(a))
		y := (*[Key4Size]byte)(unsafe.Pointer(b))
		return le64(x[0:8]) == le64(y[0:8]) && (le64(x[8:16])^le64(y[8:16]))&tailMask == 0
	}
	x := (*[Key6Size]byte)(unsafe.Pointer(a))
	y := (*[Key6Size]byte)(unsafe.Pointer(b))
	return le64(x[0:8])^le64(y[0:8])|le64(x[8:16])^le64(y[8:16])|
		le64(x[16:24])^le64(y[16:24])|le64(x[24:32])^le64(y[24:32])|
		(le64(x[32:40])^le64(y[32:40]))&tailMask == 0
}

// keyProto returns k.Proto.
func keyProto[K Key](k *K) uint8 {
	return *(*uint8)(unsafe.Add(unsafe.Pointer(k), unsafe.Sizeof(*k)-4))
}
