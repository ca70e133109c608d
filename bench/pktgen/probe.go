package pktgen

import (
	"encoding/binary"
	"fmt"
)

// Probe is what a generated frame says about itself: which stream it
// belongs to, its number in the stream, and when it was transmitted.
//
// On the wire it starts the L4 payload in one of two layouts, all fields
// big-endian. The full probe (24 bytes):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                 magic 0x43565042 ("CVPB")                     |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                          stream ID                            |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                    sequence number (64 bits)                  |
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|        transmit time, CLOCK_MONOTONIC nanoseconds (64 bits)   |
//	|                                                               |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// The compact probe (18 bytes), for payloads shorter than 24 bytes (a
// 64-byte UDP frame has exactly 18):
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|      magic 0x6376 ("cv")      |     stream ID (16 bits)       |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                sequence number (48 bits) ...                  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           ...                 |  transmit time (64 bits) ...  |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|                              ...                              |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|           ...                 |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// A compact probe carries stream IDs up to 0xffff (Spec.Validate checks)
// and the low 48 bits of the sequence number (2^48 frames is three days
// at a billion frames per second). Every field sits at an even offset, so
// the generator patches the checksum word by word. The zero value is
// stream 0, frame 0, time 0.
type Probe struct {
	Stream uint32 // the generator's stream ID (Spec.Stream)
	Seq    uint64 // frame number in the stream, from 0
	Time   int64  // transmit time, CLOCK_MONOTONIC ns (Nanotime)
}

// Probe sizes and magic numbers.
const (
	ProbeSize        = 24 // the full probe
	ProbeCompactSize = 18 // the compact probe

	probeMagic        = 0x43565042 // "CVPB"
	probeCompactMagic = 0x6376     // "cv"
	probeCompactMask  = 1<<48 - 1
)

// Offsets within the full and the compact probe.
const (
	probeStream = 4
	probeSeq    = 8
	probeTime   = 16

	probeCompactStream = 2
	probeCompactSeq    = 4
	probeCompactTime   = 10
)

// ProbeFormat is which probe, if any, a template's frames carry.
type ProbeFormat uint8

const (
	// ProbeNone: the payload is shorter than the compact probe (TCP
	// frames under 72 bytes). The frames are counted, not measured.
	ProbeNone ProbeFormat = iota
	// ProbeCompact: the 18-byte probe.
	ProbeCompact
	// ProbeFull: the 24-byte probe.
	ProbeFull
)

func (f ProbeFormat) String() string {
	switch f {
	case ProbeNone:
		return "none"
	case ProbeCompact:
		return "compact"
	case ProbeFull:
		return "full"
	}
	return fmt.Sprintf("ProbeFormat(%d)", uint8(f))
}

// probeFormatFor returns the probe a payload of n bytes has room for.
func probeFormatFor(n int) ProbeFormat {
	switch {
	case n >= ProbeSize:
		return ProbeFull
	case n >= ProbeCompactSize:
		return ProbeCompact
	}
	return ProbeNone
}

// ParseProbe reads the probe at the start of an L4 payload (without
// Ethernet padding) and reports whether there is one: a full probe when
// the payload holds 24 bytes and starts with its magic, else a compact
// probe when it holds 18 and starts with that magic. It allocates
// nothing.
func ParseProbe(payload []byte) (Probe, bool) {
	if len(payload) >= ProbeSize && binary.BigEndian.Uint32(payload) == probeMagic {
		return Probe{
			Stream: binary.BigEndian.Uint32(payload[probeStream:]),
			Seq:    binary.BigEndian.Uint64(payload[probeSeq:]),
			Time:   int64(binary.BigEndian.Uint64(payload[probeTime:])),
		}, true
	}
	if len(payload) >= ProbeCompactSize && binary.BigEndian.Uint16(payload) == probeCompactMagic {
		return Probe{
			Stream: uint32(binary.BigEndian.Uint16(payload[probeCompactStream:])),
			Seq:    uint64(binary.BigEndian.Uint16(payload[probeCompactSeq:]))<<32 | uint64(binary.BigEndian.Uint32(payload[probeCompactSeq+2:])),
			Time:   int64(binary.BigEndian.Uint64(payload[probeCompactTime:])),
		}, true
	}
	return Probe{}, false
}

// putProbe writes p in format f at the start of b, which has room for it.
// The generator writes whole probes only when it builds a template; per
// frame it patches Seq and Time (Template.put).
func putProbe(b []byte, f ProbeFormat, p Probe) {
	switch f {
	case ProbeFull:
		binary.BigEndian.PutUint32(b, probeMagic)
		binary.BigEndian.PutUint32(b[probeStream:], p.Stream)
		binary.BigEndian.PutUint64(b[probeSeq:], p.Seq)
		binary.BigEndian.PutUint64(b[probeTime:], uint64(p.Time))
	case ProbeCompact:
		binary.BigEndian.PutUint16(b, probeCompactMagic)
		binary.BigEndian.PutUint16(b[probeCompactStream:], uint16(p.Stream))
		putUint48(b[probeCompactSeq:], p.Seq)
		binary.BigEndian.PutUint64(b[probeCompactTime:], uint64(p.Time))
	}
}

func putUint48(b []byte, v uint64) {
	binary.BigEndian.PutUint16(b, uint16(v>>32))
	binary.BigEndian.PutUint32(b[2:], uint32(v))
}
