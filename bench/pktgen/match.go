package pktgen

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf/asm"

	"github.com/culvert-lb/culvert/internal/header"
)

// Match selects the frames an XDPSink or a Receiver takes: IPv4 without
// options and not a fragment, of protocol Proto to port DstPort, and, when
// set, to address Dst, from an address in Src. Frames with a VLAN tag or IP
// options never match: the generator sends neither. When DstMAC is set, a
// matching frame addressed to another MAC (a bridge flooding it before it
// has learned where DstMAC is) is counted as Flooded and passed. The probe
// is not looked at, so frames without one (64-byte TCP) match too.
//
// With Encap the frame must be IPv4 in IPv4 (RFC 2003: an outer header of
// 20 bytes, protocol 4, not a fragment), and the rest applies to the
// inner header: what an ipip load balancer sends its backends. A Receiver
// reads the probe inside.
//
// A Match is a comparable value; the zero value matches nothing valid
// (Validate rejects it).
type Match struct {
	Proto   uint8        // header.ProtoUDP or header.ProtoTCP
	DstPort uint16       // required
	Dst     netip.Addr   // zero: any destination
	Src     netip.Prefix // zero: any source
	DstMAC  [6]byte      // zero: any destination MAC, and nothing is Flooded
	Encap   bool         // IPv4 in IPv4: match the inner header
}

// Validate reports every problem with m, joined.
func (m Match) Validate() error {
	var errs []error
	if m.Proto != header.ProtoUDP && m.Proto != header.ProtoTCP {
		errs = append(errs, fmt.Errorf("match: protocol %d is neither tcp (6) nor udp (17)", m.Proto))
	}
	if m.DstPort == 0 {
		errs = append(errs, errors.New("match: port 0"))
	}
	if m.Dst.IsValid() && !m.Dst.Is4() {
		errs = append(errs, fmt.Errorf("match: dst %v is not IPv4", m.Dst))
	}
	if m.Src.IsValid() && !m.Src.Addr().Is4() {
		errs = append(errs, fmt.Errorf("match: src %v is not IPv4", m.Src))
	}
	return errors.Join(errs...)
}

// Match returns the Match of t's frames as the generator sends them:
// protocol, destination address and port. A device under test that
// rewrites them (NAT) needs a Match of its own.
func (t *Template) Match() Match {
	return Match{Proto: t.spec.Kind.Protocol(), DstPort: t.spec.Dst.Port(), Dst: t.spec.Dst.Addr()}
}

// Counts are an XDP program's counters (XDPSink's, or the one that steers
// frames to a Receiver), summed over CPUs, since it was loaded. The zero
// value is no frames.
type Counts struct {
	Packets  uint64 // matching frames: dropped (XDPSink), redirected to the socket (Receiver)
	Bytes    uint64 // their bytes, without FCS
	Flooded  uint64 // matching frames to another MAC than Match.DstMAC: passed
	NoSocket uint64 // matching frames on a queue with no socket (Receiver only): passed
}

// Merge adds o, another program's counts, to c.
func (c *Counts) Merge(o Counts) {
	c.Packets += o.Packets
	c.Bytes += o.Bytes
	c.Flooded += o.Flooded
	c.NoSocket += o.NoSocket
}

// Sub returns c minus an earlier reading of the same program: what it
// counted in between.
func (c Counts) Sub(earlier Counts) Counts {
	return Counts{Packets: c.Packets - earlier.Packets, Bytes: c.Bytes - earlier.Bytes,
		Flooded: c.Flooded - earlier.Flooded, NoSocket: c.NoSocket - earlier.NoSocket}
}

// verdict is what a program does with a frame, as matchFrame (the Go
// reference of the programs) decides it.
type verdict uint8

const (
	verdictPass    verdict = iota // not matching
	verdictTake                   // matching: drop or redirect, counted in Packets
	verdictFlooded                // matching, to another MAC: pass, counted in Flooded
)

// matchFrame is what the XDP programs decide for frame b under m, in Go:
// the reference the programs are tested against.
func matchFrame(m Match, b []byte) verdict {
	if m.Encap {
		if len(b) < progPortsEnd+encapLen || binary.BigEndian.Uint16(b[12:]) != header.EtherTypeIPv4 ||
			b[offIP] != 0x45 || binary.BigEndian.Uint16(b[offIP+6:])&0x3fff != 0 || b[offIP+9] != 4 {
			return verdictPass
		}
		inner := append(append([]byte(nil), b[:offIP]...), b[offIP+encapLen:]...)
		m.Encap = false
		v := matchFrame(m, inner)
		return v
	}
	if len(b) < progPortsEnd ||
		binary.BigEndian.Uint16(b[12:]) != header.EtherTypeIPv4 ||
		b[offIP] != 0x45 ||
		binary.BigEndian.Uint16(b[offIP+6:])&0x3fff != 0 ||
		b[offIP+9] != m.Proto ||
		binary.BigEndian.Uint16(b[offL4+2:]) != m.DstPort {
		return verdictPass
	}
	if m.Dst.IsValid() && netip.AddrFrom4([4]byte(b[offIP+16:offIP+20])) != m.Dst {
		return verdictPass
	}
	if m.Src.IsValid() && !m.Src.Contains(netip.AddrFrom4([4]byte(b[offIP+12:offIP+16]))) {
		return verdictPass
	}
	if m.DstMAC != ([6]byte{}) && [6]byte(b[0:6]) != m.DstMAC {
		return verdictFlooded
	}
	return verdictTake
}

// XDP actions (enum xdp_action) and offsets in struct xdp_md.
const (
	xdpDrop     = 1
	xdpPass     = 2
	xdpRedirect = 4

	xdpMDData     = 0
	xdpMDDataEnd  = 4
	xdpMDRxQueue  = 16
	progPortsEnd  = offL4 + 4 // the frame must reach this far
	progKeyOffset = -4        // stack slot of the counter key
	encapLen      = 20        // the outer IPv4 header of Match.Encap
)

// Counter slots of the programs' per-CPU array; each slot is two uint64s,
// frames and bytes.
const (
	slotTaken = iota
	slotFlooded
	slotNoSocket
	numSlots
)

// progInstructions returns the program for m: matching frames are counted
// in slot slotTaken of the per-CPU array countersFD and dropped, or, with
// xsksFD >= 0, redirected to the XSKMAP entry of their receive queue
// (counted in slotNoSocket and passed when it has no socket); frames to
// another MAC than m.DstMAC count in slotFlooded and pass; everything else
// passes uncounted.
//
// The offsets are fixed, the IP header being 20 bytes, so one bounds check
// against data_end covers every load. Multi-byte fields are compared as
// loaded, in network order, against constants converted the same way;
// 32-bit fields with 32-bit jumps, since a 64-bit compare would
// sign-extend the immediate.
func progInstructions(m Match, countersFD, xsksFD int) asm.Instructions {
	w32 := func(b []byte) int32 { return int32(binary.NativeEndian.Uint32(b)) }
	w16 := func(v uint16) int32 {
		var b [2]byte
		binary.BigEndian.PutUint16(b[:], v)
		return int32(binary.NativeEndian.Uint16(b[:]))
	}
	// With Encap the inner header starts encapLen further on: offIP and
	// offL4 below are the inner ones.
	var shift int16
	if m.Encap {
		shift = encapLen
	}
	offIP, offL4 := offIP+shift, offL4+shift
	insns := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, xdpMDData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, xdpMDDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, int32(progPortsEnd+shift)),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, 12, asm.Half),
		asm.JNE.Imm(asm.R5, w16(header.EtherTypeIPv4), "pass"),
	}
	if m.Encap {
		o := offIP - encapLen
		insns = append(insns,
			asm.LoadMem(asm.R5, asm.R2, o, asm.Byte),
			asm.JNE.Imm(asm.R5, 0x45, "pass"),
			asm.LoadMem(asm.R5, asm.R2, o+6, asm.Half),
			asm.And.Imm(asm.R5, w16(0x3fff)),
			asm.JNE.Imm(asm.R5, 0, "pass"),
			asm.LoadMem(asm.R5, asm.R2, o+9, asm.Byte),
			asm.JNE.Imm(asm.R5, 4, "pass"),
		)
	}
	insns = append(insns,
		asm.LoadMem(asm.R5, asm.R2, offIP, asm.Byte),
		asm.JNE.Imm(asm.R5, 0x45, "pass"),
		asm.LoadMem(asm.R5, asm.R2, offIP+6, asm.Half),
		asm.And.Imm(asm.R5, w16(0x3fff)), // MF and the offset
		asm.JNE.Imm(asm.R5, 0, "pass"),
		asm.LoadMem(asm.R5, asm.R2, offIP+9, asm.Byte),
		asm.JNE.Imm(asm.R5, int32(m.Proto), "pass"),
		asm.LoadMem(asm.R5, asm.R2, offL4+2, asm.Half),
		asm.JNE.Imm(asm.R5, w16(m.DstPort), "pass"),
	)
	if m.Dst.IsValid() {
		a := m.Dst.As4()
		insns = append(insns,
			asm.LoadMem(asm.R5, asm.R2, offIP+16, asm.Word),
			asm.JNE.Imm32(asm.R5, w32(a[:]), "pass"),
		)
	}
	if m.Src.IsValid() {
		p := m.Src.Masked()
		a := p.Addr().As4()
		var mask [4]byte
		binary.BigEndian.PutUint32(mask[:], ^uint32(0)<<(32-p.Bits())) // 0 for /0
		insns = append(insns,
			asm.LoadMem(asm.R5, asm.R2, offIP+12, asm.Word),
			asm.And.Imm32(asm.R5, w32(mask[:])),
			asm.JNE.Imm32(asm.R5, w32(a[:]), "pass"),
		)
	}
	// Matching. r9: the frame's length; r7: the counter slot; r8: the
	// verdict. (r6-r9 survive helper calls; the packet pointers do not.)
	insns = append(insns,
		asm.Mov.Reg(asm.R9, asm.R3),
		asm.Sub.Reg(asm.R9, asm.R2),
		asm.Mov.Imm(asm.R7, slotTaken),
	)
	if m.DstMAC != ([6]byte{}) {
		insns = append(insns,
			asm.LoadMem(asm.R5, asm.R2, 0, asm.Word),
			asm.JNE.Imm32(asm.R5, w32(m.DstMAC[0:4]), "flooded"),
			asm.LoadMem(asm.R5, asm.R2, 4, asm.Half),
			asm.JNE.Imm(asm.R5, int32(binary.NativeEndian.Uint16(m.DstMAC[4:6])), "flooded"),
		)
	}
	if xsksFD < 0 {
		insns = append(insns,
			asm.Mov.Imm(asm.R8, xdpDrop),
			asm.Ja.Label("count"),
		)
	} else {
		// return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS):
		// XDP_PASS when the queue has no socket.
		insns = append(insns,
			asm.LoadMapPtr(asm.R1, xsksFD),
			asm.LoadMem(asm.R2, asm.R6, xdpMDRxQueue, asm.Word),
			asm.Mov.Imm(asm.R3, xdpPass),
			asm.FnRedirectMap.Call(),
			asm.Mov.Reg(asm.R8, asm.R0),
			asm.JEq.Imm(asm.R0, xdpRedirect, "count"),
			asm.Mov.Imm(asm.R7, slotNoSocket),
			asm.Ja.Label("count"),
		)
	}
	if m.DstMAC != ([6]byte{}) {
		insns = append(insns,
			asm.Mov.Imm(asm.R7, slotFlooded).WithSymbol("flooded"),
			asm.Mov.Imm(asm.R8, xdpPass),
		)
	}
	return append(insns,
		// Per-CPU slot r7: frames += 1, bytes += r9. A program run does
		// not migrate between CPUs: plain adds, no atomics.
		asm.StoreMem(asm.R10, progKeyOffset, asm.R7, asm.Word).WithSymbol("count"),
		asm.LoadMapPtr(asm.R1, countersFD),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, progKeyOffset),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.LoadMem(asm.R1, asm.R0, 8, asm.DWord),
		asm.Add.Reg(asm.R1, asm.R9),
		asm.StoreMem(asm.R0, 8, asm.R1, asm.DWord),
		asm.Mov.Reg(asm.R0, asm.R8).WithSymbol("out"),
		asm.Return(),

		asm.Mov.Imm(asm.R0, xdpPass).WithSymbol("pass"),
		asm.Return(),
	)
}
