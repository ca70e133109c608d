package packettest

import (
	"net/netip"
	"testing"
)

// everyChecker exercises every decoding path of the checkers, nested
// scopes included.
var everyChecker = []Checker{
	EthSrc(client.MAC), EthDst(vip.MAC), EtherType(0x0800),
	Src(addrClient), Dst(addrVIP), TTL(64), Proto(6), DF(true), ID(1),
	TotalLenMatches(), ValidIPv4Checksum(), ValidL4Checksum(), ValidICMPChecksum(), ValidChecksums(),
	SrcPort(1), DstPort(2), TCPFlagsAre(FlagSYN), Seq(1), Ack(1), Payload([]byte("x")), ZeroUDPChecksum(),
	ICMPType(3), ICMPCode(4), EchoID(1), EchoSeq(1), NextHopMTU(1400),
	ARP(ARPOp(1), ARPSender(client.MAC, addrClient), ARPTarget(vip.MAC, addrVIP)),
	IPv4(), IPv6(), TCP(), UDP(), ICMPv4(),
	Quoted(Src(addrClient), SrcPort(1), Seq(1), TCPFlagsAre(0), Payload(nil), ValidChecksums(), TotalLenMatches(), EchoSeq(1)),
	IPIP(Inner(Dst(addrVIP), DstPort(80), ValidChecksums(), TotalLenMatches(), Quoted(Seq(1)))),
}

// FuzzCheck feeds arbitrary frames to every checker: they must report, never
// panic, whatever the bytes. A frame the reference classifier calls TCP
// without options or ICMP must also decode as such.
func FuzzCheck(f *testing.F) {
	for _, fx := range Fixtures() {
		f.Add(fx.Frame)
	}
	f.Add(ipip)
	f.Add(fragNeed)
	f.Fuzz(func(t *testing.T, frame []byte) {
		run(frame, everyChecker...)
		switch classify(frame) {
		case WantTCP:
			if frame[14+int(frame[14]&0x0f)*4+12]>>4 == 5 {
				if r := run(frame, IPv4(TCP())); len(r.errs) > 0 {
					t.Errorf("reference parser says TCP, checkers say %q", r.errs)
				}
			}
		case WantICMP:
			if r := run(frame, IPv4(ICMPv4(), ValidIPv4Checksum())); len(r.errs) > 0 {
				t.Errorf("reference parser says ICMP, checkers say %q", r.errs)
			}
		}
	})
}

// FuzzBuilders checks that whatever the fields, the builders produce frames
// the checkers accept, with the fields as given: gopacket's serialization
// and this package's independent checksums agree.
func FuzzBuilders(f *testing.F) {
	f.Add(uint16(40000), uint16(80), uint32(1), uint32(2), uint8(FlagSYN), uint8(64), []byte("payload"))
	f.Add(uint16(0), uint16(0), uint32(0), uint32(0), uint8(0), uint8(0), []byte{})
	f.Add(uint16(65535), uint16(65535), ^uint32(0), ^uint32(0), uint8(0xff), uint8(255), make([]byte, 1400))
	f.Fuzz(func(t *testing.T, sport, dport uint16, seq, ack uint32, flags, ttl uint8, payload []byte) {
		if len(payload) > 1400 {
			payload = payload[:1400]
		}
		src := Endpoint{MAC: client.MAC, Addr: netip.AddrPortFrom(addrClient, sport)}
		dst := Endpoint{MAC: vip.MAC, Addr: netip.AddrPortFrom(addrVIP, dport)}
		src6 := Endpoint{MAC: client.MAC, Addr: netip.AddrPortFrom(client6.Addr.Addr(), sport)}
		dst6 := Endpoint{MAC: vip.MAC, Addr: netip.AddrPortFrom(vip6.Addr.Addr(), dport)}
		l4 := []Checker{SrcPort(sport), DstPort(dport), Payload(payload), TTL(ttl), ValidChecksums(), TotalLenMatches()}
		tcp := append([]Checker{TCPFlagsAre(TCPFlags(flags)), Seq(seq), Ack(ack)}, l4...)

		Check(t, TCP4(src, dst, TCPFlags(flags), payload, WithSeq(seq), WithAck(ack), WithTTL(ttl)), IPv4(tcp...))
		Check(t, TCP6(src6, dst6, TCPFlags(flags), payload, WithSeq(seq), WithAck(ack), WithTTL(ttl)), IPv6(tcp...))
		Check(t, UDP4(src, dst, payload, WithTTL(ttl)), IPv4(l4...))
		Check(t, UDP6(src6, dst6, payload, WithTTL(ttl)), IPv6(l4...))
		Check(t, ICMP4Echo(src, dst, sport, dport, payload, WithTTL(ttl)),
			IPv4(EchoID(sport), EchoSeq(dport), Payload(payload), ValidChecksums(), TotalLenMatches()))
		inner := TCP4(src, dst, TCPFlags(flags), payload, WithSeq(seq))
		Check(t, ICMP4Error(router, src, 3, 4, uint16(len(payload)), Quote(inner, 8+int(ttl))),
			IPv4(NextHopMTU(uint16(len(payload))), ValidChecksums(), Quoted(Dst(addrVIP), SrcPort(sport), DstPort(dport), Seq(seq))))
		Check(t, Encap4(lbTunnel, backend, IPPacket(inner)),
			IPIP(ValidChecksums(), TotalLenMatches(), Inner(Dst(addrVIP), Seq(seq), Payload(payload), TotalLenMatches())))
	})
}
