package dataplane

import (
	"cmp"

	"github.com/culvert-lb/culvert/conntrack"
	"github.com/culvert-lb/culvert/dataplane/sched"
	"github.com/culvert-lb/culvert/internal/header"
	"github.com/culvert-lb/culvert/nat"
	"github.com/culvert-lb/culvert/nic"
)

// BatchSize is the most frames a worker takes from one queue per Poll.
const BatchSize = 64

// Worker runs the pipeline for one queue on each dataplane link (one-armed:
// one queue; two-armed: queue i of the client-side interface and queue i
// of the server-side one). A Worker owns its queues, its batch arrays, its
// scheduler cursors and its share of every SNAT port pool; it is used by
// one goroutine at a time (Poll is not reentrant). It reads the shared
// connection table through its own conntrack.Reader and the configuration
// through an atomic pointer loaded once per Poll.
//
// A frame leaving by the link it came in on is rewritten in place and
// transmitted from its own chunk. A frame leaving by another link is
// copied into a chunk allocated on that link's queue (each queue sends
// only from its own UMEM), and the original is released: Stats.CrossLink
// counts the copies, DropNoTXFrame the frames for which the queue had no
// chunk to spare.
type Worker struct {
	d      *Dataplane
	id     uint16
	links  []workerLink // indexed as Config.Links
	reader *conntrack.Reader
	c      *counters
	sync   *syncRing // HA sync events; nil without Options.SyncQueue

	// The batch being handled: received on link in, whose queue, UMEM and
	// chunk size these are.
	in    uint8
	q     nic.Queue
	umem  []byte
	chunk uint64

	cfg     *compiled
	cursors []uint32 // per service: WRR/LC rotation
	localRR int
	ipID    uint16

	acc   [nCounters]uint64
	svcs  flowCounts         // per service ID
	bes   flowCounts         // per backend ID
	tag   [BatchSize]flowTag // flow of each frame of the batch, for per-service counts
	rx    [BatchSize]nic.Desc
	p     [BatchSize]parsed
	kidx  [BatchSize]uint8 // index into keys/refs for kindFlow and kindICMPErr
	keys  [BatchSize]conntrack.Key4
	refs  [BatchSize]conntrack.Ref[conntrack.Key4]
	out   [BatchSize]uint8 // link a VerdictTX frame leaves by
	cross [BatchSize]uint8 // frames of the batch leaving by another link
	pass  [BatchSize]nic.Desc
	drop  [BatchSize]nic.Desc // dropped, and originals of cross-link copies
	alloc [BatchSize]nic.Desc
}

// workerLink is a worker's queue on one link and what it transmits at the
// end of the Poll: frames are collected from every link's batch so that
// each queue gets one Transmit call per Poll.
type workerLink struct {
	q     nic.Queue
	umem  []byte
	chunk uint64
	tx    []nic.Desc // BatchSize per link: every batch may leave by this one
	tags  []flowTag  // tags[j] is the flow tx[j] belongs to
	ntx   int
}

// Stats returns a snapshot of this worker's counters.
func (w *Worker) Stats() Stats { return w.c.snapshot() }

// Poll receives one batch from each of the worker's queues in turn, runs
// them through the pipeline, makes one Transmit call per queue with what
// leaves by it and hands every frame back. It returns the number of frames
// received; zero means every queue was empty. It never blocks and, once the
// configuration has been seen, allocates nothing.
func (w *Worker) Poll() int {
	total := 0
	var now int64
	for i := range w.links {
		l := &w.links[i]
		n := l.q.Receive(w.rx[:])
		if n == 0 {
			continue
		}
		if total == 0 {
			now = w.d.clock()
			if c := w.d.cfg.Load(); c != w.cfg {
				w.adopt(c)
			}
		}
		w.batch(uint8(i), n, now)
		total += n
	}
	if total == 0 {
		return 0
	}
	w.flush()
	w.publish()
	return total
}

// batch runs the n frames in w.rx, received on link in, through the
// pipeline. Frames to transmit join their link's TX array; the rest go
// back to the queue they came from.
func (w *Worker) batch(in uint8, n int, now int64) {
	l := &w.links[in]
	w.in, w.q, w.umem, w.chunk = in, l.q, l.umem, l.chunk
	w.reader.Begin()

	nk := 0
	for i := 0; i < n; i++ {
		d := w.rx[i]
		w.acc[cRXBytes] += uint64(d.Len)
		decode(w.umem[d.Addr:d.Addr+uint64(d.Len)], &w.p[i], &w.keys[nk])
		if k := w.p[i].kind; k == kindFlow || k == kindICMPErr {
			w.kidx[i] = uint8(nk)
			nk++
		}
	}
	w.d.ct.LookupBatch(w.keys[:nk], w.refs[:nk])

	npass, ndrop, ncross := 0, 0, 0
	for i := 0; i < n; i++ {
		w.out[i] = in
		w.tag[i].svc = noTag
		v, why, pwhy := w.handle(i, now)
		switch v {
		case VerdictTX:
			if w.out[i] == in {
				l.tx[l.ntx] = w.rx[i]
				l.tags[l.ntx] = w.tag[i]
				l.ntx++
			} else {
				w.cross[ncross] = uint8(i)
				ncross++
			}
		case VerdictPass:
			w.pass[npass] = w.rx[i]
			w.acc[cPassBase+int(pwhy)]++
			npass++
		default:
			w.drop[ndrop] = w.rx[i]
			w.acc[cDropBase+int(why)]++
			ndrop++
		}
	}
	w.reader.End()

	if ncross > 0 {
		ndrop = w.crossLink(ncross, ndrop)
	}
	if npass > 0 {
		w.q.Pass(w.pass[:npass])
	}
	if ndrop > 0 {
		w.q.Release(w.drop[:ndrop])
	}
	w.acc[cRX] += uint64(n)
}

// crossLink copies the batch's frames listed in w.cross into chunks
// allocated on the queues of the links they leave by (one Alloc call per
// link) and queues the copies for transmission there. The originals, and
// the frames no chunk was found for (DropNoTXFrame), join w.drop from
// ndrop on, to go back to their own queue; it returns the new count.
func (w *Worker) crossLink(ncross, ndrop int) int {
	for e := range w.links {
		out := uint8(e)
		if out == w.in {
			continue
		}
		k := 0
		for _, i := range w.cross[:ncross] {
			if w.out[i] == out {
				k++
			}
		}
		if k == 0 {
			continue
		}
		el := &w.links[e]
		got := el.q.Alloc(w.alloc[:k])
		used := 0
		for _, i := range w.cross[:ncross] {
			if w.out[i] != out {
				continue
			}
			src := w.rx[i]
			w.drop[ndrop] = src
			ndrop++
			if used == got || uint64(src.Len) > el.chunk {
				w.acc[cDropBase+int(DropNoTXFrame)]++
				continue
			}
			dst := w.alloc[used]
			used++
			// The copy starts at the queue's headroom, or earlier when a
			// frame grown into its own headroom would not fit behind it.
			base := dst.Addr &^ (el.chunk - 1)
			if dst.Addr+uint64(src.Len) > base+el.chunk {
				dst.Addr = base + el.chunk - uint64(src.Len)
			}
			dst.Len = src.Len
			copy(el.umem[dst.Addr:dst.Addr+uint64(dst.Len)], w.umem[src.Addr:src.Addr+uint64(src.Len)])
			el.tx[el.ntx] = dst
			el.tags[el.ntx] = w.tag[i]
			el.ntx++
			w.acc[cCrossLink]++
		}
		if used < got {
			el.q.Release(w.alloc[used:got])
		}
	}
	return ndrop
}

// flush transmits what each link collected during the Poll, one Transmit
// call per queue; what a full TX ring refused goes back to that queue
// (DropTXFull).
func (w *Worker) flush() {
	for e := range w.links {
		l := &w.links[e]
		ntx := l.ntx
		if ntx == 0 {
			continue
		}
		l.ntx = 0
		sent := l.q.Transmit(l.tx[:ntx])
		if sent < ntx {
			w.acc[cDropBase+int(DropTXFull)] += uint64(ntx - sent)
			l.q.Release(l.tx[sent:ntx])
		}
		w.acc[cTX] += uint64(sent)
		for j, t := range l.tags[:sent] {
			w.acc[cTXBytes] += uint64(l.tx[j].Len)
			if t.svc != noTag {
				w.countTX(t, l.tx[j].Len)
			}
		}
	}
}

// countTX counts a transmitted frame of length n for its flow's service
// and backend.
func (w *Worker) countTX(t flowTag, n uint32) {
	if a := w.svcs.touch(t.svc); a != nil {
		a.packets++
		a.bytes += uint64(n)
	}
	if a := w.bes.touch(t.be); a != nil {
		a.packets++
		a.bytes += uint64(n)
	}
}

// publish adds the batch's counts to the shared block. The worker is the
// block's only writer, so a load and a store suffice.
func (w *Worker) publish() {
	for i := range w.acc {
		if v := w.acc[i]; v != 0 {
			w.c.v[i].Store(w.c.v[i].Load() + v)
			w.acc[i] = 0
		}
	}
	w.svcs.publish()
	w.bes.publish()
}

// adopt switches the worker to a new configuration. It allocates when the
// number of services grew; that happens once per Apply, not per packet.
func (w *Worker) adopt(c *compiled) {
	if len(w.cursors) < len(c.svcs) {
		w.cursors = append(w.cursors, make([]uint32, len(c.svcs)-len(w.cursors))...)
	}
	w.cfg = c
}

// handle runs the pipeline for frame i and returns its verdict.
func (w *Worker) handle(i int, now int64) (Verdict, DropReason, PassReason) {
	p := &w.p[i]
	switch p.kind {
	case kindDrop:
		return VerdictDrop, p.drop, PassNone
	case kindPass:
		return VerdictPass, DropNone, p.pass
	case kindARP:
		return w.arp(i)
	case kindEcho:
		return w.echo(i)
	}
	k := w.kidx[i]
	ref := w.refs[k]
	if p.kind == kindICMPErr {
		if ref.E == nil {
			if w.owns(w.keys[k].Dst) {
				return VerdictDrop, DropNoFlow, PassNone
			}
			return VerdictPass, DropNone, PassICMP
		}
		return w.icmpError(i, ref)
	}
	if ref.E != nil {
		var old conntrack.State
		if w.sync != nil {
			old = ref.E.State()
		}
		if st, alive := w.d.ct.Track(ref.E, ref.Dir, p.flags, conntrack.Time(now)); alive {
			if w.sync != nil && st != old {
				w.sync.push(ref.E.Flow(), st, false) // a change of state for the HA peer
			}
			return w.forward(i, ref.E.Flow(), ref.Dir)
		}
	}
	return w.newFlow(i, &w.keys[k], now)
}

// owns reports whether a is an address this dataplane answers for (a VIP or
// a local address), so that unmatched traffic to it is dropped rather than
// passed to a kernel that does not have it.
func (w *Worker) owns(a [4]byte) bool {
	return w.cfg.vips[a] || w.cfg.localSet[a]
}

// toBackend makes frame i leave by be's link and returns the source MAC it
// must carry there.
func (w *Worker) toBackend(i int, be *Backend) header.MAC {
	w.out[i] = be.Link
	return w.cfg.links[be.Link].mac
}

// toClient makes frame i leave by the link toward clients and returns the
// source MAC it must carry there.
func (w *Worker) toClient(i int) header.MAC {
	w.out[i] = w.cfg.client
	return w.cfg.links[w.cfg.client].mac
}

// forward rewrites frame i of a tracked flow for its direction.
func (w *Worker) forward(i int, f *conntrack.Flow[conntrack.Key4], dir conntrack.Dir) (Verdict, DropReason, PassReason) {
	c := w.cfg
	if int(f.Backend) >= len(c.cfg.Backends) || c.cfg.Backends[f.Backend].Removed {
		return VerdictDrop, DropBackendGone, PassNone
	}
	be := &c.cfg.Backends[f.Backend]
	// Counted if the frame is transmitted (flush); a drop ignores the tag.
	w.tag[i] = flowTag{svc: f.Service, be: f.Backend}
	d := &w.rx[i]
	frame := w.umem[d.Addr : d.Addr+uint64(d.Len)]
	eth := header.Ethernet(frame)
	ip := header.IPv4(frame[l3:])
	if f.HasReply {
		if ip.TTL() <= 1 {
			return VerdictDrop, DropTTLExceeded, PassNone
		}
		l4 := frame[w.p[i].l4:]
		if dir == conntrack.DirOriginal {
			if be.MAC == (header.MAC{}) {
				return VerdictDrop, DropNoNeighbor, PassNone
			}
			nat.Route4(ip, l4, f.Orig.Proto, f.Reply.Dst, f.Reply.Src, f.Reply.DstPort, f.Reply.SrcPort)
			nat.SetMACs(eth, w.toBackend(i, be), be.MAC)
		} else {
			if c.cfg.Gateway == (header.MAC{}) {
				return VerdictDrop, DropNoNeighbor, PassNone
			}
			nat.Route4(ip, l4, f.Orig.Proto, f.Orig.Dst, f.Orig.Src, f.Orig.DstPort, f.Orig.SrcPort)
			nat.SetMACs(eth, w.toClient(i), c.cfg.Gateway)
		}
		return VerdictTX, DropNone, PassNone
	}
	if int(f.Service) >= len(c.svcs) || !c.svcs[f.Service].live {
		return VerdictDrop, DropNoService, PassNone
	}
	if be.MAC == (header.MAC{}) {
		return VerdictDrop, DropNoNeighbor, PassNone
	}
	switch c.svcs[f.Service].svc.Mode {
	case ModeDSR:
		nat.SetMACs(eth, w.toBackend(i, be), be.MAC)
		return VerdictTX, DropNone, PassNone
	case ModeIPIP:
		return w.encap(i, be)
	}
	return VerdictDrop, DropNoService, PassNone // service turned to nat under a one-way flow
}

// encap wraps frame i in IP-in-IP toward be, or answers the sender with
// fragmentation-needed, out of the link the frame came in on, when the
// result would not fit the backend's link.
func (w *Worker) encap(i int, be *Backend) (Verdict, DropReason, PassReason) {
	d := &w.rx[i]
	frame := w.umem[d.Addr : d.Addr+uint64(d.Len)]
	ip := header.IPv4(frame[l3:])
	if mtu := w.cfg.links[be.Link].mtu; int(ip.TotalLen())+nat.IPIPOverhead > mtu {
		if !ip.DF() {
			return VerdictDrop, DropTooBig, PassNone
		}
		w.out[i] = w.in
		w.tag[i].svc = noTag // the answer is ours, not the flow's
		d.Len = uint32(nat.FragNeeded4(frame, w.cfg.links[w.in].mac, uint16(mtu-nat.IPIPOverhead)))
		w.acc[cFragNeeded]++
		return VerdictTX, DropNone, PassNone
	}
	if d.Addr&(w.chunk-1) < nat.IPIPOverhead {
		return VerdictDrop, DropNoHeadroom, PassNone
	}
	// Trim Ethernet padding so the outer length matches the frame.
	end := d.Addr + uint64(l3) + uint64(ip.TotalLen())
	buf := w.umem[d.Addr-nat.IPIPOverhead : end]
	w.ipID++
	nat.EncapIPIP(buf, w.cfg.cfg.EncapSrc, be.Addr, w.ipID)
	nat.SetMACs(header.Ethernet(buf), w.toBackend(i, be), be.MAC)
	d.Addr -= nat.IPIPOverhead
	d.Len = uint32(len(buf))
	return VerdictTX, DropNone, PassNone
}

// snatTries is how many SNAT ports newFlow tries for one flow when the
// reply tuples it builds are taken by flows imported from an HA peer.
// After a failover a port is taken about as often as the peer's flows
// toward that backend fill the port range (the pools hand ports out in
// random order, different on each box: nat.PortPool.Shuffle), so eight
// tries in a row fail only when the range is nearly full of them.
const snatTries = 8

// newFlow handles the first packet of a flow: find its service, pick a
// backend, allocate a SNAT port in nat mode, record the flow and forward.
func (w *Worker) newFlow(i int, k *conntrack.Key4, now int64) (Verdict, DropReason, PassReason) {
	c := w.cfg
	p := &w.p[i]
	id, ok := c.lookup(k.Dst, k.Proto, k.DstPort)
	if !ok {
		if w.owns(k.Dst) {
			return VerdictDrop, DropNoFlow, PassNone
		}
		return VerdictPass, DropNone, PassNotOwned
	}
	st := &c.svcs[id]
	mode := st.svc.Mode
	state := conntrack.StateUDP
	if k.Proto == header.ProtoTCP {
		syn := p.flags&(header.TCPFlagSYN|header.TCPFlagACK|header.TCPFlagRST|header.TCPFlagFIN) == header.TCPFlagSYN
		switch {
		case syn:
			state = conntrack.StateSynSent
		case mode == ModeNAT || p.flags&header.TCPFlagRST != 0:
			// nat: the backend never saw this connection; its SNAT
			// mapping is gone. A reset needs no new flow.
			return VerdictDrop, DropNoFlow, PassNone
		default:
			// dsr/ipip: a connection we lost track of (restart,
			// failover). Maglev sends it where it went before.
			state = conntrack.StateEstablished
		}
	} else if mode == ModeNAT {
		state = conntrack.StateUDPUnreplied
	}

	backend, ok := w.pick(id, st, k, now)
	if !ok {
		return VerdictDrop, DropNoBackend, PassNone
	}
	be := &c.cfg.Backends[backend]
	f := conntrack.Flow[conntrack.Key4]{Orig: *k, Service: id, Backend: backend, Owner: w.id}
	var pool *nat.PortPool
	var port uint16
	var e *conntrack.Entry[conntrack.Key4]
	var err error
	if mode == ModeNAT {
		f.HasReply = true
		// A backend without a port keeps the client's destination port:
		// the service port, or for a ranged service whichever port of
		// the range the client chose (port-preserving).
		f.Reply = conntrack.Key4{Src: be.Addr, SrcPort: cmp.Or(be.Port, k.DstPort), Proto: k.Proto}
	} else {
		f.OneWay = true
	}
	for try := 1; ; try++ {
		if mode == ModeNAT {
			var la *localAddr
			la, pool, port, ok = w.snatPort(now, st)
			if !ok {
				return VerdictDrop, DropPortsExhausted, PassNone
			}
			f.Local, f.Reply.Dst, f.Reply.DstPort = la.idx, la.addr, port
		}
		e, err = w.d.ct.Insert(&f, state, conntrack.Time(now))
		if err != conntrack.ErrReplyExists {
			break
		}
		// The reply tuple is taken by a flow this pool did not place
		// (one imported from an HA peer, which picked its ports from
		// the same range): keep the port out of use, as that flow's
		// expiry releases it, and try the next one rather than drop
		// the SYN and make the client wait a second to retransmit.
		w.acc[cPortClashes]++
		if try == snatTries {
			return VerdictDrop, DropPortInUse, PassNone
		}
	}
	if err != nil {
		if pool != nil {
			pool.Unget(port)
		}
		switch {
		case err == conntrack.ErrExists && e != nil && e.Flow().Orig == *k:
			// Another worker created this flow first: use theirs.
			return w.forward(i, e.Flow(), conntrack.DirOriginal)
		case err == conntrack.ErrExists:
			// The tuple is another flow's reply tuple.
			return VerdictDrop, DropPortInUse, PassNone
		}
		return VerdictDrop, DropTableFull, PassNone
	}
	w.d.active.Inc(backend)
	if w.sync != nil {
		w.sync.push(e.Flow(), state, false)
	}
	w.acc[cNewFlows]++
	if a := w.svcs.touch(id); a != nil {
		a.newFlows++
	}
	if a := w.bes.touch(backend); a != nil {
		a.newFlows++
	}
	return w.forward(i, e.Flow(), conntrack.DirOriginal)
}

// pick chooses the backend of a new flow, honouring persistence.
func (w *Worker) pick(id uint32, st *svcState, k *conntrack.Key4, now int64) (uint32, bool) {
	var tk conntrack.Key4
	if st.persist > 0 {
		tk = conntrack.Key4{Src: k.Src, Dst: k.Dst, DstPort: k.DstPort, Proto: conntrack.ProtoPersist}
		if ref := w.d.ct.Lookup(&tk); ref.E != nil {
			b := ref.E.Flow().Backend
			if !st.member[b] || w.cfg.cfg.Backends[b].Removed || w.cfg.cfg.Backends[b].Weight == 0 {
				// The client's backend left, or drains: end the template,
				// so that the Insert below sticks the client to a new one.
				w.d.ct.Expire(ref.E)
			} else if _, alive := w.d.ct.Track(ref.E, conntrack.DirOriginal, 0, conntrack.Time(now)); alive {
				return b, true
			}
		}
	}
	h := sched.FlowHash4(&w.cfg.cfg.HashKey, k.Src, k.Dst, k.SrcPort, k.DstPort, k.Proto)
	b, ok := st.sched.Pick(h, &w.cursors[id])
	if ok && st.persist > 0 {
		t := conntrack.Flow[conntrack.Key4]{Orig: tk, Service: id, Backend: b, Owner: w.id, PersistTimeout: st.persist}
		// A full table or a racing insert only costs stickiness.
		if e, err := w.d.ct.Insert(&t, conntrack.StatePersist, conntrack.Time(now)); err == nil && w.sync != nil {
			w.sync.push(e.Flow(), conntrack.StatePersist, false)
		}
	}
	return b, ok
}

// snatPort takes a source port from this worker's share of the service's
// local addresses (every local address unless Service.Locals says
// otherwise), rotating over them.
func (w *Worker) snatPort(now int64, st *svcState) (*localAddr, *nat.PortPool, uint16, bool) {
	ls := w.cfg.locals
	if st.locals != nil {
		ls = st.locals
	}
	for range ls {
		w.localRR++
		if w.localRR >= len(ls) {
			w.localRR = 0
		}
		la := ls[w.localRR]
		pool := la.pools[w.id]
		if port, ok := pool.Get(now); ok {
			return la, pool, port, true
		}
	}
	return nil, nil, 0, false
}

// icmpError forwards an ICMP error about a tracked flow to the host that
// owns that flow: the backend for errors about what the client was sent,
// the client for errors about what the backend was sent.
func (w *Worker) icmpError(i int, ref conntrack.Ref[conntrack.Key4]) (Verdict, DropReason, PassReason) {
	f := ref.E.Flow()
	c := w.cfg
	if int(f.Backend) >= len(c.cfg.Backends) || c.cfg.Backends[f.Backend].Removed {
		return VerdictDrop, DropBackendGone, PassNone
	}
	be := &c.cfg.Backends[f.Backend]
	d := &w.rx[i]
	frame := w.umem[d.Addr : d.Addr+uint64(d.Len)]
	ip := header.IPv4(frame[l3:])
	w.acc[cICMPErrors]++
	if !f.HasReply {
		// dsr/ipip: the backend sent the quoted packet as the VIP; give it
		// the error as is, as the flow's own packets go. It is not the
		// flow's traffic in the per-service counts.
		v, why, pass := w.forward(i, f, conntrack.DirOriginal)
		w.tag[i].svc = noTag
		return v, why, pass
	}
	if ip.TTL() <= 1 {
		return VerdictDrop, DropTTLExceeded, PassNone
	}
	icmp := header.ICMPv4(frame[w.p[i].l4 : l3+int(ip.TotalLen())])
	if ref.Dir == conntrack.DirOriginal {
		// About a packet sent to the client as VIP: the backend sent it,
		// as backend -> local.
		if be.MAC == (header.MAC{}) {
			return VerdictDrop, DropNoNeighbor, PassNone
		}
		nat.RewriteICMPError4(ip, icmp, f.Reply.Dst, f.Reply.Src, f.Reply.Src, f.Reply.Dst, f.Reply.SrcPort, f.Reply.DstPort)
		ip.DecTTL()
		nat.SetMACs(header.Ethernet(frame), w.toBackend(i, be), be.MAC)
		return VerdictTX, DropNone, PassNone
	}
	// About a packet sent to the backend as local -> backend: the client
	// sent it, as client -> VIP.
	if c.cfg.Gateway == (header.MAC{}) {
		return VerdictDrop, DropNoNeighbor, PassNone
	}
	nat.RewriteICMPError4(ip, icmp, f.Orig.Dst, f.Orig.Src, f.Orig.Src, f.Orig.Dst, f.Orig.SrcPort, f.Orig.DstPort)
	ip.DecTTL()
	nat.SetMACs(header.Ethernet(frame), w.toClient(i), c.cfg.Gateway)
	return VerdictTX, DropNone, PassNone
}
