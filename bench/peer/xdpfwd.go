package peer

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"

	"github.com/cilium/ebpf/asm"
)

// XDPForwarderConfig describes an XDPForwarder. The zero value spreads the
// lab's VIP over every backend on the server segment.
type XDPForwarderConfig struct {
	// VIP is the address whose frames are forwarded; zero: the lab's.
	VIP netip.Addr
	// Backends are the MACs frames to the VIP go to; empty: every backend
	// on the server segment, in order. See XDPForwarder for the choice.
	Backends []net.HardwareAddr
}

// XDPForwarderStats are the forwarder's counters, summed over CPUs, since
// it was loaded. The zero value is no frames.
type XDPForwarderStats struct {
	Forwarded uint64 // frames to the VIP, rewritten and sent (XDP_TX or redirect)
	Passed    uint64 // everything else, left to the kernel
}

// xdpfwd counter slots, and XDP actions (enum xdp_action).
const (
	fwdSlotForwarded = 0
	fwdSlotPassed    = 1
	fwdSlots         = 2

	xdpPass = 2
	xdpTX   = 3

	ethIPv4 = 0x0800
)

// xdpfwdProgram is what the forwarder's program is built from.
type xdpfwdProgram struct {
	statsFD  int       // per-CPU array of fwdSlots uint64
	vip      [4]byte   // frames to this address are forwarded
	backends [][6]byte // destination MACs, chosen by source port
	self     [6]byte   // source MAC: the interface the frame leaves by
	redirect int       // ifindex to bpf_redirect to; 0: XDP_TX
}

// instructions returns the forwarder's XDP program:
//
//	frame                                               action
//	shorter than Ethernet + a 20-byte IPv4 header        pass
//	not IPv4 (EtherType), or not to the VIP             pass
//	to the VIP                                          dst MAC := backend, src MAC := self,
//	                                                    XDP_TX or bpf_redirect(ifindex)
//
// The backend is backends[sport % len(backends)] where sport is the TCP or
// UDP source port of an IPv4 header without options (IHL 5); anything else
// to the VIP (ICMP, IP options, a frame cut short in the ports) goes to
// backends[0]. Nothing else is changed: no TTL, no checksum (an L2
// forwarder, as in DSR). The MACs are immediates in the program; there is
// no lookup.
func (p xdpfwdProgram) instructions() (asm.Instructions, error) {
	n := len(p.backends)
	if n == 0 {
		return nil, fmt.Errorf("xdp forwarder: no backend MAC")
	}
	w32 := func(b []byte) int64 { return int64(int32(binary.NativeEndian.Uint32(b))) } // as a 32-bit store writes b
	w16 := func(b []byte) int64 { return int64(binary.NativeEndian.Uint16(b)) }
	be16 := func(v uint16) int32 { return int32(binary.NativeEndian.Uint16(binary.BigEndian.AppendUint16(nil, v))) }
	mac := func(off int16, m [6]byte) asm.Instructions {
		return asm.Instructions{
			asm.StoreImm(asm.R8, off, w32(m[0:4]), asm.Word),
			asm.StoreImm(asm.R8, off+4, w16(m[4:6]), asm.Half),
		}
	}
	// r8 data, r9 data_end (callee-saved, still packet pointers after the
	// helper calls), r7 backend index.
	ins := asm.Instructions{
		asm.LoadMem(asm.R8, asm.R1, 0, asm.Word),
		asm.LoadMem(asm.R9, asm.R1, 4, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R8),
		asm.Add.Imm(asm.R4, 14+20),
		asm.JGT.Reg(asm.R4, asm.R9, "pass"),
		asm.LoadMem(asm.R5, asm.R8, 12, asm.Half),
		asm.JNE.Imm(asm.R5, be16(ethIPv4), "pass"),
		asm.LoadMem(asm.R5, asm.R8, 14+16, asm.Word),
		asm.JNE.Imm32(asm.R5, int32(w32(p.vip[:])), "pass"),

		asm.Mov.Imm(asm.R7, 0),
		asm.LoadMem(asm.R5, asm.R8, 14, asm.Byte),
		asm.JNE.Imm(asm.R5, 0x45, "pick"),
		asm.LoadMem(asm.R5, asm.R8, 14+9, asm.Byte),
		asm.JEq.Imm(asm.R5, int32(TCP), "ports"),
		asm.JNE.Imm(asm.R5, int32(UDP), "pick"),
		asm.Mov.Reg(asm.R4, asm.R8).WithSymbol("ports"),
		asm.Add.Imm(asm.R4, 14+20+2),
		asm.JGT.Reg(asm.R4, asm.R9, "pick"),
		asm.LoadMem(asm.R7, asm.R8, 14+20, asm.Half),
		asm.HostTo(asm.BE, asm.R7, asm.Half), // network to host order (a swap is its own inverse)
		asm.Mod.Imm(asm.R7, int32(n)),
	}
	// The backend chain: case i for all but the last, which is the
	// default (the verifier cannot know that r7 < n). Case 0 is "pick".
	caseLabel := func(i int) string {
		if i == 0 {
			return "pick"
		}
		return fmt.Sprintf("case%d", i)
	}
	for i, m := range p.backends {
		var c asm.Instructions
		if i < n-1 {
			c = append(c, asm.JNE.Imm(asm.R7, int32(i), caseLabel(i+1)))
		}
		c = append(c, mac(0, m)...)
		c = append(c, asm.Ja.Label("src"))
		c[0] = c[0].WithSymbol(caseLabel(i))
		ins = append(ins, c...)
	}
	src := mac(6, p.self)
	src[0] = src[0].WithSymbol("src")
	ins = append(ins, src...)
	ins = append(ins, countSlot(p.statsFD, fwdSlotForwarded, "fwd")...)
	if p.redirect == 0 {
		ins = append(ins, asm.Mov.Imm(asm.R0, xdpTX))
	} else {
		ins = append(ins,
			asm.Mov.Imm(asm.R1, int32(p.redirect)),
			asm.Mov.Imm(asm.R2, 0),
			asm.FnRedirect.Call(), // XDP_REDIRECT
		)
	}
	ins = append(ins, asm.Return())

	pass := countSlot(p.statsFD, fwdSlotPassed, "pass")
	pass[0] = pass[0].WithSymbol("pass")
	ins = append(ins, pass...)
	ins = append(ins, asm.Mov.Imm(asm.R0, xdpPass), asm.Return())
	return ins, nil
}

// countSlot adds one to slot of the per-CPU array statsFD. It clobbers
// r0-r5; label names its exit.
func countSlot(statsFD int, slot int32, label string) asm.Instructions {
	done := label + "_counted"
	return asm.Instructions{
		asm.StoreImm(asm.R10, -4, int64(slot), asm.Word),
		asm.LoadMapPtr(asm.R1, statsFD),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, -4),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, done),
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord), // per-CPU: a plain add
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Reg(asm.R0, asm.R0).WithSymbol(done),
	}
}

// xdpPassInstructions is a program that passes every frame: attached to a
// veth, it gives the veth the NAPI context that receives frames redirected
// into its peer.
func xdpPassInstructions() asm.Instructions {
	return asm.Instructions{asm.Mov.Imm(asm.R0, xdpPass), asm.Return()}
}
