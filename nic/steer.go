package nic

import (
	"encoding/binary"
	"fmt"
	"net/netip"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// # The steering program
//
// An AF_XDP socket sees only what an XDP program on its interface redirects
// to it. Steering is that program: it hands the dataplane what the
// dataplane owns and leaves everything else (SSH, ARP for the host's own
// addresses, VRRP, health checks) to the kernel, on the same interface.
// VIPs and local (SNAT) addresses are never kernel addresses.
//
// It reads the frame once, bounds-checking every header against data_end
// as the verifier requires:
//
//	Ethernet (IEEE 802.3), 14 bytes; VLAN-tagged frames are passed
//	+--------------------+--------------------+-----------+
//	| destination MAC(6) |   source MAC (6)   | EtherType |
//	+--------------------+--------------------+-----------+
//
//	ARP (RFC 826) for Ethernet/IPv4, 28 bytes
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          htype = 1            |         ptype = 0x0800        |
//	|   hlen = 6    |   plen = 4    |       op = 1 (request)        |
//	|   sender MAC (6), sender IP (4), target MAC (6), target IP (4) |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
//	IPv4 (RFC 791), IHL*4 bytes, then the TCP/UDP ports (RFC 9293, RFC 768)
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|Version|  IHL  |    DSCP/ECN   |          Total Length         |
//	|         Identification        |Flags|     Fragment Offset     |
//	|      TTL      |    Protocol   |        Header Checksum        |
//	|                        Source Address                         |
//	|                      Destination Address                      |
//	|                      Options (IHL > 5)                        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|          Source Port          |       Destination Port        |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//
// and decides, first match wins:
//
//	frame                                                      action
//	not IPv4 or ARP (IPv6, VLAN-tagged, ...)                   pass
//	ARP request for Ethernet/IPv4 whose target IP is a VIP     redirect
//	  or a local address (an HA pair moves both with VRRP)
//	other ARP, or ARP cut short                                pass
//	IPv4 header cut short, version != 4, IHL < 5               pass
//	IPv4 to a local address: any protocol, fragment or not     redirect
//	non-first fragment (offset != 0) to a VIP                  redirect
//	ICMP (echo, errors, any type) to a VIP                     redirect
//	TCP/UDP whose (dst, dst port, proto) is a service          redirect
//	TCP/UDP to a VIP, ports cut short (or beyond a long IHL)   redirect
//	anything else                                              pass
//
// Once the IPv4 header is readable, a frame for an owned address goes to
// the dataplane even when the rest is broken: the dataplane validates what
// it gets (checksums, lengths, options) and counts and drops what it
// cannot use, and the kernel has no use for such a frame either. No
// checksum is checked here.
//
// Redirect is bpf_redirect_map(xsks, rx_queue_index, XDP_PASS): when the
// XSKMAP holds no socket for the frame's queue (or the queue is beyond its
// size) the helper returns XDP_PASS, and the program counts the frame as
// redirect-failed. XDP_REDIRECT does not promise delivery: a full socket
// RX ring drops the frame in the kernel (the socket's XDP_STATISTICS count
// it), not here.

// XDP actions (enum xdp_action in linux/bpf.h).
const (
	xdpAborted  = 0
	xdpPass     = 2
	xdpRedirect = 4
)

// Offsets in struct xdp_md, the XDP program's context.
const (
	xdpMDData    = 0
	xdpMDDataEnd = 4
	xdpMDRxQueue = 16
)

// Wire offsets the programs read, from the start of the frame unless
// noted.
const (
	progEthLen     = 14
	progEthType    = 12
	progARPLen     = 28
	progARPTarget  = progEthLen + 24 // target protocol address
	progIPv4MinLen = 20
	progIPVerIHL   = progEthLen + 0
	progIPFrag     = progEthLen + 6
	progIPProto    = progEthLen + 9
	progIPDst      = progEthLen + 16
	progL4DstPort  = 2 // from the start of the TCP/UDP header
)

// IP protocol numbers the programs match.
const (
	progProtoICMP = 1
	progProtoIPIP = 4
	progProtoTCP  = 6
	progProtoUDP  = 17
)

// bpfNoPrealloc is BPF_F_NO_PREALLOC: hash map entries are allocated on
// update instead of all at creation, so generous limits cost nothing until
// used.
const bpfNoPrealloc = 1

// Limits of the steering maps. Update rejects larger sets; the maps hold
// twice as many entries, so that Update can add every new key before it
// deletes the stale ones.
const (
	SteerMaxVIPs     = 4096
	SteerMaxLocals   = 4096
	SteerMaxServices = 65536
)

// SteerService is one (VIP, port, protocol) the dataplane serves. Addr and
// Port are in host terms (Port 80 is port 80); Proto is an IP protocol
// number, 6 (TCP) or 17 (UDP). A SteerService is a comparable value.
type SteerService struct {
	Addr  [4]byte
	Port  uint16
	Proto uint8
}

// String returns the service as "198.18.1.1:80/tcp".
func (s SteerService) String() string {
	p := fmt.Sprintf("proto-%d", s.Proto)
	switch s.Proto {
	case progProtoTCP:
		p = "tcp"
	case progProtoUDP:
		p = "udp"
	}
	return netip.AddrPortFrom(netip.AddrFrom4(s.Addr), s.Port).String() + "/" + p
}

// steerServiceKey is the key of the services map, laid out as the program
// builds it on its stack: destination address (network order), destination
// port (network order), protocol, one zero pad byte.
type steerServiceKey [8]byte

func makeSteerServiceKey(s SteerService) steerServiceKey {
	var k steerServiceKey
	copy(k[0:4], s.Addr[:])
	binary.BigEndian.PutUint16(k[4:6], s.Port)
	k[6] = s.Proto
	return k
}

// steerCounter indexes the steering program's per-CPU counters map.
type steerCounter uint32

const (
	steerRedirected     steerCounter = iota // bpf_redirect_map returned XDP_REDIRECT
	steerPassed                             // not the dataplane's: XDP_PASS
	steerRedirectFailed                     // the dataplane's, but no socket on the queue: XDP_PASS
	steerCounters                           // number of counters
)

// SteerStats are the steering program's counters, summed over CPUs, since
// it was loaded. The zero value is no frames.
type SteerStats struct {
	Redirected     uint64 // handed to the AF_XDP socket of the frame's queue
	Passed         uint64 // not the dataplane's: left to the kernel
	RedirectFailed uint64 // the dataplane's, but no socket on the queue: left to the kernel
}

// AttachMode is how an XDP program is attached to an interface.
type AttachMode uint8

const (
	// AttachAuto tries native mode and falls back to generic mode.
	AttachAuto AttachMode = iota
	// AttachNative runs the program in the driver (XDP_FLAGS_DRV_MODE).
	AttachNative
	// AttachGeneric runs the program on socket buffers, after the driver
	// (XDP_FLAGS_SKB_MODE): works on every interface, slower, and AF_XDP
	// on it is copy mode only.
	AttachGeneric
)

var attachModeNames = [...]string{"auto", "native", "generic"}

func (m AttachMode) String() string {
	if int(m) < len(attachModeNames) {
		return attachModeNames[m]
	}
	return fmt.Sprintf("AttachMode(%d)", uint8(m))
}

// Names of the steering program's maps in its CollectionSpec.
const (
	steerMapServices = "services"
	steerMapLocals   = "locals"
	steerMapVIPs     = "vips"
	steerMapXSKs     = "xsks"
	steerMapStats    = "stats"
	steerProgName    = "culvert_steer"
)

// progLicense is the license the programs declare to the kernel. They call
// no GPL-only helper.
const progLicense = "Apache-2.0"

// wire16 returns the value a 16-bit load of v, stored in network order,
// yields on this host: what the program compares a loaded field with.
func wire16(v uint16) int32 {
	var b [2]byte
	binary.BigEndian.PutUint16(b[:], v)
	return int32(binary.NativeEndian.Uint16(b[:]))
}

// wire64 is wire16 for a 64-bit load.
func wire64(v uint64) int64 {
	var b [8]byte
	binary.BigEndian.PutUint64(b[:], v)
	return int64(binary.NativeEndian.Uint64(b[:]))
}

// steerSpec returns the steering program and its maps, for an interface
// with the given number of receive queues (the size of the XSKMAP). It
// needs no privileges; loading it does.
func steerSpec(queues int) *ebpf.CollectionSpec {
	addrMap := func(name string, max uint32) *ebpf.MapSpec {
		return &ebpf.MapSpec{Name: "culvert_" + name, Type: ebpf.Hash, KeySize: 4, ValueSize: 1, MaxEntries: 2 * max, Flags: bpfNoPrealloc}
	}
	return &ebpf.CollectionSpec{
		Maps: map[string]*ebpf.MapSpec{
			steerMapServices: {Name: "culvert_svcs", Type: ebpf.Hash, KeySize: 8, ValueSize: 1, MaxEntries: 2 * SteerMaxServices, Flags: bpfNoPrealloc},
			steerMapLocals:   addrMap(steerMapLocals, SteerMaxLocals),
			steerMapVIPs:     addrMap(steerMapVIPs, SteerMaxVIPs),
			steerMapXSKs:     {Name: "culvert_xsks", Type: ebpf.XSKMap, KeySize: 4, ValueSize: 4, MaxEntries: uint32(queues)},
			steerMapStats:    {Name: "culvert_sstats", Type: ebpf.PerCPUArray, KeySize: 4, ValueSize: 8, MaxEntries: uint32(steerCounters)},
		},
		Programs: map[string]*ebpf.ProgramSpec{
			steerProgName: {
				Name:         steerProgName,
				Type:         ebpf.XDP,
				License:      progLicense,
				Instructions: steerInstructions(),
			},
		},
	}
}

// Stack slots of the steering program, below the frame pointer r10.
const (
	steerKey     = -8  // services key (8 bytes); its first 4 are the address key
	steerKeyPort = -4  // destination port, network order
	steerKeyProt = -2  // protocol
	steerKeyPad  = -1  // zero
	steerCtrKey  = -16 // counter index (4 bytes)
)

// steerInstructions assembles the steering program. Registers:
//
//	r6  the context (struct xdp_md *), all along
//	r7  IPv4 header length in bytes; later the action to return
//	r8  IPv4 protocol
//	r9  fragment offset bits of the IPv4 header (non-zero: non-first fragment)
//	r2, r3  data and data_end, reloaded after each helper call
func steerInstructions() asm.Instructions {
	lookup := func(mapName, found string) asm.Instructions {
		return asm.Instructions{
			asm.LoadMapPtr(asm.R1, 0).WithReference(mapName),
			asm.Mov.Reg(asm.R2, asm.R10),
			asm.Add.Imm(asm.R2, steerKey),
			asm.FnMapLookupElem.Call(),
			asm.JNE.Imm(asm.R0, 0, found),
		}
	}
	var p asm.Instructions
	emit := func(ins ...asm.Instruction) { p = append(p, ins...) }

	emit(
		asm.Mov.Reg(asm.R6, asm.R1),
		asm.LoadMem(asm.R2, asm.R6, xdpMDData, asm.Word),
		asm.LoadMem(asm.R3, asm.R6, xdpMDDataEnd, asm.Word),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, progEthLen),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, progEthType, asm.Half),
		asm.JEq.Imm(asm.R5, wire16(0x0800), "ipv4"),
		asm.JNE.Imm(asm.R5, wire16(0x0806), "pass"),

		// ARP: a request for Ethernet/IPv4 (the first 8 bytes, compared
		// at once) whose target is a VIP or a local address.
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, progEthLen+progARPLen),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, progEthLen, asm.DWord),
		asm.LoadImm(asm.R4, wire64(0x0001_0800_06_04_0001), asm.DWord),
		asm.JNE.Reg(asm.R5, asm.R4, "pass"),
		asm.LoadMem(asm.R5, asm.R2, progARPTarget, asm.Word),
		asm.StoreMem(asm.R10, steerKey, asm.R5, asm.Word),
	)
	emit(lookup(steerMapVIPs, "redirect")...)
	emit(lookup(steerMapLocals, "redirect")...)
	emit(
		asm.Ja.Label("pass"),

		// IPv4: the fixed header must be there, version 4, IHL >= 5.
		asm.Mov.Reg(asm.R4, asm.R2).WithSymbol("ipv4"),
		asm.Add.Imm(asm.R4, progEthLen+progIPv4MinLen),
		asm.JGT.Reg(asm.R4, asm.R3, "pass"),
		asm.LoadMem(asm.R5, asm.R2, progIPVerIHL, asm.Byte),
		asm.Mov.Reg(asm.R4, asm.R5),
		asm.And.Imm(asm.R4, 0xf0),
		asm.JNE.Imm(asm.R4, 0x40, "pass"),
		asm.And.Imm(asm.R5, 0x0f),
		asm.JLT.Imm(asm.R5, 5, "pass"),
		asm.LSh.Imm(asm.R5, 2),
		asm.Mov.Reg(asm.R7, asm.R5),
		asm.LoadMem(asm.R8, asm.R2, progIPProto, asm.Byte),
		asm.LoadMem(asm.R9, asm.R2, progIPFrag, asm.Half),
		asm.And.Imm(asm.R9, wire16(0x1fff)),
		asm.LoadMem(asm.R5, asm.R2, progIPDst, asm.Word),
		asm.StoreMem(asm.R10, steerKey, asm.R5, asm.Word),
	)
	// Every port and protocol of a local address is the dataplane's.
	emit(lookup(steerMapLocals, "redirect")...)
	emit(
		asm.JNE.Imm(asm.R9, 0, "vip"), // non-first fragment: no ports to look at
		asm.JEq.Imm(asm.R8, progProtoICMP, "vip"),
		asm.JEq.Imm(asm.R8, progProtoTCP, "ports"),
		asm.JNE.Imm(asm.R8, progProtoUDP, "pass"),

		// TCP/UDP: look (dst, dst port, proto) up in services.
		asm.LoadMem(asm.R2, asm.R6, xdpMDData, asm.Word).WithSymbol("ports"),
		asm.LoadMem(asm.R3, asm.R6, xdpMDDataEnd, asm.Word),
		asm.Add.Reg(asm.R2, asm.R7),
		asm.Mov.Reg(asm.R4, asm.R2),
		asm.Add.Imm(asm.R4, progEthLen+progL4DstPort+2),
		asm.JGT.Reg(asm.R4, asm.R3, "vip"), // ports cut short: the dataplane's if to a VIP
		asm.LoadMem(asm.R5, asm.R2, progEthLen+progL4DstPort, asm.Half),
		asm.StoreMem(asm.R10, steerKeyPort, asm.R5, asm.Half),
		asm.StoreMem(asm.R10, steerKeyProt, asm.R8, asm.Byte),
		asm.StoreImm(asm.R10, steerKeyPad, 0, asm.Byte),
	)
	emit(lookup(steerMapServices, "redirect")...)
	emit(asm.Ja.Label("pass"))

	// To a VIP: ICMP, non-first fragments, TCP/UDP without ports.
	vip := lookup(steerMapVIPs, "redirect")
	vip[0] = vip[0].WithSymbol("vip")
	emit(vip...)

	emit(
		// Not ours.
		asm.Mov.Imm(asm.R7, xdpPass).WithSymbol("pass"),
		asm.Mov.Imm(asm.R1, int32(steerPassed)),
		asm.Ja.Label("count"),

		// Ours: to the socket of this queue, or XDP_PASS if it has none.
		asm.LoadMapPtr(asm.R1, 0).WithReference(steerMapXSKs).WithSymbol("redirect"),
		asm.LoadMem(asm.R2, asm.R6, xdpMDRxQueue, asm.Word),
		asm.Mov.Imm(asm.R3, xdpPass),
		asm.FnRedirectMap.Call(),
		asm.Mov.Reg(asm.R7, asm.R0),
		asm.Mov.Imm(asm.R1, int32(steerRedirected)),
		asm.JEq.Imm(asm.R0, xdpRedirect, "count"),
		asm.Mov.Imm(asm.R1, int32(steerRedirectFailed)),
	)
	emit(progCount(steerMapStats, steerCtrKey)...)
	return p
}

// progCount is the tail both programs share, labelled "count": add one to
// the per-CPU counter whose index is in r1, then return r7. It uses the
// stack slot at off (4 bytes).
func progCount(statsMap string, off int16) asm.Instructions {
	return asm.Instructions{
		asm.StoreMem(asm.R10, off, asm.R1, asm.Word).WithSymbol("count"),
		asm.LoadMapPtr(asm.R1, 0).WithReference(statsMap),
		asm.Mov.Reg(asm.R2, asm.R10),
		asm.Add.Imm(asm.R2, int32(off)),
		asm.FnMapLookupElem.Call(),
		asm.JEq.Imm(asm.R0, 0, "out"),
		// A per-CPU slot, and a program run does not migrate between
		// CPUs: a plain add, no atomic.
		asm.LoadMem(asm.R1, asm.R0, 0, asm.DWord),
		asm.Add.Imm(asm.R1, 1),
		asm.StoreMem(asm.R0, 0, asm.R1, asm.DWord),
		asm.Mov.Reg(asm.R0, asm.R7).WithSymbol("out"),
		asm.Return(),
	}
}
