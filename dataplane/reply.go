package dataplane

import "github.com/culvert-lb/culvert/internal/header"

// arp answers an ARP request for a VIP or a local (SNAT) address in place,
// when this appliance answers for them; any other ARP goes to the kernel.
// Local addresses are answered so that an HA pair can move them with
// VRRP: backends reach them on-link and follow the master's ARP.
func (w *Worker) arp(i int) (Verdict, DropReason, PassReason) {
	d := &w.rx[i]
	frame := w.umem[d.Addr : d.Addr+uint64(d.Len)]
	a := header.ARP(frame[l3:])
	if !w.cfg.cfg.AnswerVIPs || !a.IsValid() || a.Op() != header.ARPRequest || !w.owns(a.TargetIP()) {
		return VerdictPass, DropNone, PassARP
	}
	asker, askerIP, vip := a.SenderHW(), a.SenderIP(), a.TargetIP()
	eth := header.Ethernet(frame)
	eth.SetDst(asker)
	self := w.cfg.links[w.in].mac // the reply leaves by the link the request came in on
	eth.SetSrc(self)
	a.Encode(header.ARPReply, self, vip, asker, askerIP)
	w.acc[cARPReplies]++
	return VerdictTX, DropNone, PassNone
}

// echo answers an ICMP echo request to a VIP or a local address in place
// (RFC 792); echo to any other address goes to the kernel.
func (w *Worker) echo(i int) (Verdict, DropReason, PassReason) {
	d := &w.rx[i]
	frame := w.umem[d.Addr : d.Addr+uint64(d.Len)]
	ip := header.IPv4(frame[l3:])
	if !w.cfg.cfg.AnswerVIPs || !w.owns(ip.Dst()) {
		return VerdictPass, DropNone, PassICMP
	}
	eth := header.Ethernet(frame)
	eth.SetDst(eth.Src())
	eth.SetSrc(w.cfg.links[w.in].mac)
	src, dst := ip.Src(), ip.Dst()
	// Swapping the addresses leaves the header sum unchanged.
	copy(frame[l3+12:], dst[:])
	copy(frame[l3+16:], src[:])
	oldTTL := uint16(ip.TTL())<<8 | uint16(ip.Protocol())
	frame[l3+8] = 64
	ip.SetChecksum(header.ChecksumUpdate16(ip.Checksum(), oldTTL, uint16(64)<<8|uint16(ip.Protocol())))
	m := header.ICMPv4(frame[w.p[i].l4 : l3+int(ip.TotalLen())])
	old := uint16(m.Type())<<8 | uint16(m.Code())
	m[0] = header.ICMPv4EchoReply
	m.SetChecksum(header.ChecksumUpdate16(m.Checksum(), old, uint16(header.ICMPv4EchoReply)<<8|uint16(m.Code())))
	d.Len = uint32(l3 + int(ip.TotalLen()))
	w.acc[cEchoReplies]++
	return VerdictTX, DropNone, PassNone
}
