package nic

import (
	"errors"
	"fmt"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// # The decapsulation program
//
// In ipip mode the dataplane sends each packet to its backend inside an
// outer IPv4 header (IP-in-IP, protocol 4, RFC 2003), and the backend
// answers the client directly. A backend kernel without the ipip driver
// cannot take the outer header off, so Culvert ships Decap, an XDP program
// for the backend's interface (`culvert decap --iface IF`) that does it
// before the kernel sees the packet, in the spirit of Katran's decap
// program:
//
//	before:  | Ethernet | outer IPv4 (proto 4) | inner IPv4 | L4 ... |
//	after:              | Ethernet | inner IPv4 | L4 ... |
//
// It moves the Ethernet addresses forward by the outer header's length
// (IHL*4, options included), keeps EtherType IPv4, and moves the frame's
// start with bpf_xdp_adjust_head. The inner packet is not touched: no
// checksum changes, and the kernel validates it as it would any packet.
//
// A frame is decapsulated only when all of these hold; anything else
// passes unchanged:
//
//   - EtherType IPv4, outer version 4, IHL >= 5, protocol 4;
//   - the outer header is not a fragment (MF clear, offset 0): the kernel
//     could not reassemble what it cannot decapsulate, so it drops those;
//   - the inner packet starts with an IPv4 header (version 4, 20 bytes in
//     the frame);
//   - the outer destination is one of the host's addresses in the addrs
//     map.
//
// An empty addrs map decapsulates nothing. Decapsulating every protocol-4
// packet would let anyone who can reach the interface hand the kernel
// arbitrary inner packets, also those it would route onwards; restricting
// it to the host's own addresses keeps it to the traffic a tunnel endpoint
// on those addresses would accept. NewDecap therefore asks for at least one
// address.

// Names of the decapsulation program's maps in its CollectionSpec.
const (
	decapMapAddrs = "addrs"
	decapMapStats = "stats"
	decapProgName = "culvert_decap"
)

// DecapMaxAddrs is the number of addresses a Decap accepts.
const DecapMaxAddrs = 1024

// decapCounter indexes the decapsulation program's per-CPU counters map.
type decapCounter uint32

const (
	decapDecapsulated decapCounter = iota // outer header stripped
	decapPassed                           // left as it was
	decapCounters                         // number of counters
)

// DecapStats are the decapsulation program's counters, summed over CPUs,
// since it was loaded. The zero value is no frames.
type DecapStats struct {
	Decapsulated uint64 // outer IPv4 header stripped, inner packet to the kernel
	Passed       uint64 // not IPIP to one of the addresses: to the kernel unchanged
}

// decapSpec returns the decapsulation program and its maps. It needs no
// privileges; loading it does.
func decapSpec() *ebpf.CollectionSpec {
	return &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			decapMapAddrs: {Name: "culvert_daddrs", Type: ebpf.Hash, KeySize: 4, ValueSize: 1, MaxEntries: 2 * DecapMaxAddrs, Flags: bpfNoPrealloc},
			decapMapStats: {Name: "culvert_dstats", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: uint32(decapCounters)},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			decapProgName: {
				Name:         decapProgName,
				Type:         ebpf.XDP,
				License:      progLicense,
				Instructions: decapInstructions(),
			},
		},
	}
}

// Stack slots of the decapsulation program.
const (
	decapKey    = -8  // outer destination address (4 bytes)
	decapCtrKey = -16 // counter index (4 bytes)
)

// decapInstructions assembles the decapsulation program. Registers:
//
//	r6  the context, all along
//	r7  outer IPv4 header length in bytes; later the action to return
//	r8, r9  the Ethernet destination and source addresses (bytes 0-7, 8-11)
//	r2, r3  data and data_end, reloaded after each helper call
func decapInstructions() asm.Instructions {
	p := asm.Instructions{
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, xdpMDData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, xdpMDDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, progEthLen+progIPv4MinLen),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, progEthType, asm.Half),
		asm.JNE.Imm(asm.R5, wire16(0x0800), "pass"),
		asm.LoadMem(asm.R5, asm.R2, progIPVerIHL, asm.Byte),
		asm.Mov.Reg(asm.R4, asm.R5),
		asm.And.Imm(asm.R4, 0xf0),
		asm.JNE.Imm(asm.R4, 0x40, "pass"),
		asm.And.Imm(asm.R5, 0x0f),
		asm.JLT.Imm(asm.R5, 5, "pass"),
		asm.LSh.Imm(asm.R5, 2),
		asm.Mov.Reg(asm.R7, asm.R5),
		asm.LoadMem(asm.R4, asm.R2, progIPProto, asm.Byte),
		asm.JNE.Imm(asm.R4, progProtoIPIP, "pass"),
		asm.LoadMem(asm.R4, asm.R2, progIPFrag, asm.Half),
		asm.And.Imm(asm.R4, wire16(0x3fff)), // MF and offset
		asm.JNE.Imm(asm.R4, 0, "pass"),

		// The inner header: version 4 and 20 bytes present.
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Reg(asm.R4, asm.R7),
		asm.Mov.Reg(asm.R5, asm.R4),
		asm.Add.Imm(asm.R5, progEthLen+progIPv4MinLen),
		asm.JGT.Reg(asm.R5, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R4, progEthLen, asm.Byte),
		asm.And.Imm(asm.R5, 0xf0),
		asm.JNE.Imm(asm.R5, 0x40, "pass"),

		// The outer destination must be one of ours.
		asm.LoadMem(asm.R5, asm.R2, progIPDst, asm.Word),
		asm.StoreMem(asm.R10, decapKey, asm.R5, asm.Word),
		asm.LoadMapPtr(asm.R1, 0).WithReference(decapMapAddrs),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, decapKey),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "pass"),

		// Keep the Ethernet addresses, drop the outer header, write them
		// back in front of the inner one. EtherType stays IPv4.
		asm.LoadMem(asm.R2, asm.R6, xdpMDData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, xdpMDDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, progEthLen),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R8, asm.R2, 0, asm.DWord),
		asm.LoadMem(asm.R9, asm.R2, 8, asm.Word),
		asm.Mov.Reg(asm.R1, asm.R6),
		asm.Mov.Reg(asm.R2, asm.R7),
		asm.FnXdpAdjustHead.Call(),
		asm.JNE.Imm(asm.R0, 0, "pass"), // refused: the frame is as it was
		asm.LoadMem(asm.R2, asm.R6, xdpMDData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, xdpMDDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, progEthLen),
		// Cannot happen (the inner header was there), but the verifier
		// wants the check; a frame already cut must not reach the kernel.
		asm.JGT.Reg(asm.R4, asm.R3, "abort"),
		asm.StoreMem(asm.R2, 0, asm.R8, asm.DWord),
		asm.StoreMem(asm.R2, 8, asm.R9, asm.Word),
		asm.StoreImm(asm.R2, progEthType, int64(wire16(0x0800)), asm.Half),
		asm.Mov.Imm(asm.R7, xdpPass),
		asm.Mov.Imm(asm.R1, int32(decapDecapsulated)),
		asm.Ja.Label("count"),

		asm.Mov.Imm(asm.R0, xdpAborted).WithSymbol("abort"),
		asm.Return(),

		asm.Mov.Imm(asm.R7, xdpPass).WithSymbol("pass"),
		asm.Mov.Imm(asm.R1, int32(decapPassed)),
	}
	return append(p, progCount(decapMapStats, decapCtrKey)...)
}

// decapCheckAddrs reports whether addrs is a usable set of addresses.
func decapCheckAddrs(addrs [][4]byte) error {
	switch {
	case len(addrs) == 0:
		return errors.New("no addresses: nothing would be decapsulated")
	case len(addrs) > DecapMaxAddrs:
		return fmt.Errorf("%d addresses, at most %d", len(addrs), DecapMaxAddrs)
	}
	return nil
}
