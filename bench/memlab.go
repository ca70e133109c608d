package bench

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"sort"

	"github.com/culvert-lb/culvert/appliance"
	"github.com/culvert-lb/culvert/dataplane"
	"github.com/culvert-lb/culvert/internal/header"
	"github.com/culvert-lb/culvert/nat"
	"github.com/culvert-lb/culvert/nic"
)

// MemLab addresses: the client side sits behind a gateway; the backends
// share a segment with the appliance.
var (
	memSelfMAC    = header.MAC{0x02, 0xc0, 0x1b, 0, 0, 0x01}
	memGatewayMAC = header.MAC{0x02, 0xc0, 0x1b, 0, 0, 0xfe}
)

// MemLabOptions says how much traffic a MemLab run sends.
type MemLabOptions struct {
	TCPConns     int // HTTP-like TCP connections, each a full open/request/response/close
	UDPDatagrams int // echo requests
}

// BackendShare is what one backend served in a run.
type BackendShare struct {
	Addr   netip.Addr
	Weight uint32
	TCP    int
	UDP    int
}

// MemLabResult is the outcome of one MemLab run.
type MemLabResult struct {
	Mode           string
	TCPConns       int // connections attempted
	TCPOK          int // completed with the right response and valid checksums end to end
	UDPSent, UDPOK int
	Backends       []BackendShare
	Stats          dataplane.Stats
	LiveFlows      int
	Problems       []string // the first few things that went wrong
}

type memBackend struct {
	addr  [4]byte
	mac   header.MAC
	share *BackendShare
}

type memLab struct {
	mode     string
	vip      [4]byte
	dp       *dataplane.Dataplane
	w        *dataplane.Worker
	q        *nic.Mem
	backends map[header.MAC]*memBackend
	res      *MemLabResult
	wire     [][]byte         // frames in flight
	done     map[[6]byte]bool // client address and port of completed connections
}

// RunMemLab runs spec's first service (TCP) and second (UDP), as Default
// lays them out, over the in-memory lab and reports what each simulated
// host saw. Every frame a host accepts must carry valid IPv4 and TCP/UDP
// checksums, recomputed from scratch.
func RunMemLab(spec appliance.Spec, opt MemLabOptions) (*MemLabResult, error) {
	if len(spec.Services) < 2 || spec.Services[0].Protocol != "tcp" || spec.Services[1].Protocol != "udp" {
		return nil, errors.New("memlab: spec needs a tcp service then a udp service (see appliance.Default)")
	}
	l := &memLab{mode: spec.Services[0].Mode, vip: spec.Services[0].VIP.As4(), backends: map[header.MAC]*memBackend{}, done: map[[6]byte]bool{}}
	l.res = &MemLabResult{Mode: l.mode}
	byAddr := map[netip.Addr]*memBackend{}
	for _, sv := range spec.Services[:2] {
		for _, b := range sv.Backends {
			if byAddr[b.Address] != nil {
				continue
			}
			a := b.Address.As4()
			mb := &memBackend{addr: a, mac: header.MAC{0x02, 0xbe, a[0], a[1], a[2], a[3]}}
			l.res.Backends = append(l.res.Backends, BackendShare{Addr: b.Address, Weight: b.Weight})
			byAddr[b.Address] = mb
		}
	}
	for i := range l.res.Backends {
		mb := byAddr[l.res.Backends[i].Addr]
		mb.share = &l.res.Backends[i]
		l.backends[mb.mac] = mb
	}
	links := appliance.Links{Self: memSelfMAC, Gateway: memGatewayMAC, Backend: func(a netip.Addr) header.MAC {
		if b := byAddr[a]; b != nil {
			return b.mac
		}
		return header.MAC{}
	}}
	cfg, err := appliance.NewBuilder().Build(&spec, links)
	if err != nil {
		return nil, err
	}
	if l.dp, err = dataplane.New(dataplane.Options{Workers: 1, MaxFlows: 1 << 18}); err != nil {
		return nil, err
	}
	if err := l.dp.Apply(cfg); err != nil {
		return nil, err
	}
	if l.q, err = nic.NewMem(4*dataplane.BatchSize, 2048, 256); err != nil {
		return nil, err
	}
	if l.w, err = l.dp.NewWorker(0, l.q); err != nil {
		return nil, err
	}
	tcpPort, udpPort := spec.Services[0].Port, spec.Services[1].Port
	for i := 0; i < opt.TCPConns; i++ {
		src, sport := clientOf(i)
		l.wire = append(l.wire, buildTCP4(tcpSeg{srcMAC: memGatewayMAC, dstMAC: memSelfMAC, src: src, dst: l.vip,
			sport: sport, dport: tcpPort, seq: 1000, flags: header.TCPFlagSYN}))
		l.res.TCPConns++
		l.run()
	}
	for i := 0; i < opt.UDPDatagrams; i++ {
		src, sport := clientOf(i)
		l.wire = append(l.wire, buildUDP4(memGatewayMAC, memSelfMAC, src, l.vip, sport, udpPort, []byte(fmt.Sprintf("echo %d", i))))
		l.res.UDPSent++
		l.run()
	}
	l.res.Stats = l.dp.Stats()
	l.res.LiveFlows = l.dp.Table().Stats().Live
	return l.res, nil
}

// clientOf spreads connections over 200 client addresses in the lab's
// client network, 198.19.0.0/24.
func clientOf(i int) ([4]byte, uint16) {
	return [4]byte{198, 19, 0, byte(10 + i%200)}, uint16(20000 + i/200)
}

func (l *memLab) problem(format string, a ...any) {
	if len(l.res.Problems) < 8 {
		l.res.Problems = append(l.res.Problems, fmt.Sprintf(format, a...))
	}
}

// run moves frames until the wire is quiet.
func (l *memLab) run() {
	for steps := 0; len(l.wire) > 0 && steps < 64; steps++ {
		var toAppliance [][]byte
		in := l.wire
		l.wire = nil
		for _, f := range in {
			dst := header.Ethernet(f).Dst()
			switch {
			case dst == memSelfMAC:
				toAppliance = append(toAppliance, f)
			case dst == memGatewayMAC:
				l.client(f)
			case l.backends[dst] != nil:
				l.backend(l.backends[dst], f)
			default:
				l.problem("frame to unknown MAC %x", dst)
			}
		}
		for len(toAppliance) > 0 {
			n := min(len(toAppliance), dataplane.BatchSize)
			for _, f := range toAppliance[:n] {
				l.q.Inject(f)
			}
			toAppliance = toAppliance[n:]
			l.w.Poll()
			l.wire = append(l.wire, l.q.TakeTX()...)
			if p := l.q.TakePassed(); len(p) > 0 {
				l.problem("appliance passed %d frames to the kernel", len(p))
			}
		}
	}
}

// backend plays one real server: it answers SYN, a request and FIN, and
// echoes UDP, naming itself. In dsr and ipip it holds the VIP on loopback
// and answers the client directly through the gateway.
func (l *memLab) backend(b *memBackend, f []byte) {
	if l.mode == "ipip" {
		inner, ok := nat.DecapIPIP(f)
		if !ok {
			l.problem("backend %v: not an IP-in-IP frame", ip4(b.addr))
			return
		}
		f = inner
	}
	r, ok := verify(f)
	if !ok {
		l.problem("backend %v: frame with a bad header or checksum", ip4(b.addr))
		return
	}
	want := b.addr
	if l.mode != "nat" {
		want = l.vip
	}
	if r.dst != want {
		l.problem("backend %v: packet for %v", ip4(b.addr), ip4(r.dst))
		return
	}
	next := memSelfMAC // nat: replies go back through the appliance
	if l.mode != "nat" {
		next = memGatewayMAC
	}
	name := []byte(fmt.Sprintf("served by %v", ip4(b.addr)))
	if r.proto == header.ProtoUDP {
		b.share.UDP++
		l.wire = append(l.wire, buildUDP4(b.mac, next, r.dst, r.src, r.dport, r.sport, append(append(name, ": "...), r.payload...)))
		return
	}
	reply := tcpSeg{srcMAC: b.mac, dstMAC: next, src: r.dst, dst: r.src, sport: r.dport, dport: r.sport}
	switch {
	case r.flags == header.TCPFlagSYN:
		reply.seq, reply.ack, reply.flags = 5000, r.seq+1, header.TCPFlagSYN|header.TCPFlagACK
	case len(r.payload) > 0:
		b.share.TCP++
		reply.seq, reply.ack = 5001, r.seq+uint32(len(r.payload))
		reply.flags = header.TCPFlagACK | header.TCPFlagPSH | header.TCPFlagFIN
		reply.payload = name
	case r.flags&header.TCPFlagFIN != 0:
		reply.seq, reply.ack, reply.flags = 5002+uint32(len(name)), r.seq+1, header.TCPFlagACK
	default:
		return // a bare ACK
	}
	l.wire = append(l.wire, buildTCP4(reply))
}

// client plays the clients: it completes the handshake, sends a request,
// checks the response comes from the VIP, and closes.
func (l *memLab) client(f []byte) {
	r, ok := verify(f)
	if !ok {
		l.problem("client: frame with a bad header or checksum")
		return
	}
	if r.src != l.vip {
		l.problem("client: reply from %v, not the VIP", ip4(r.src))
		return
	}
	if r.proto == header.ProtoUDP {
		if bytes.HasPrefix(r.payload, []byte("served by ")) && bytes.Contains(r.payload, []byte(": echo ")) {
			l.res.UDPOK++
		} else {
			l.problem("client: unexpected echo %q", r.payload)
		}
		return
	}
	seg := tcpSeg{srcMAC: memGatewayMAC, dstMAC: memSelfMAC, src: r.dst, dst: r.src, sport: r.dport, dport: r.sport}
	switch {
	case r.flags == header.TCPFlagSYN|header.TCPFlagACK && r.ack == 1001:
		seg.seq, seg.ack, seg.flags = 1001, r.seq+1, header.TCPFlagACK|header.TCPFlagPSH
		seg.payload = []byte("GET / HTTP/1.0\r\n\r\n")
	case r.flags&header.TCPFlagFIN != 0 && bytes.HasPrefix(r.payload, []byte("served by ")):
		k := [6]byte{r.dst[0], r.dst[1], r.dst[2], r.dst[3], byte(r.dport >> 8), byte(r.dport)}
		if !l.done[k] {
			l.done[k] = true
			l.res.TCPOK++
		}
		seg.seq, seg.ack = r.ack, r.seq+uint32(len(r.payload))+1
		seg.flags = header.TCPFlagACK | header.TCPFlagFIN
	case r.flags == header.TCPFlagACK:
		return // the backend's last ACK
	default:
		l.problem("client: unexpected segment flags %#x ack %d", r.flags, r.ack)
		return
	}
	l.wire = append(l.wire, buildTCP4(seg))
}

type ip4 [4]byte

func (a ip4) String() string { return netip.AddrFrom4(a).String() }

// Format renders results as the demo's table.
func Format(rs []*MemLabResult) string {
	var b bytes.Buffer
	fmt.Fprintf(&b, "%-5s %12s %12s  %s\n", "mode", "tcp ok/sent", "udp ok/sent", "share of connections per backend (weight)")
	for _, r := range rs {
		total := 0
		for _, s := range r.Backends {
			total += s.TCP + s.UDP
		}
		sort.Slice(r.Backends, func(i, j int) bool { return r.Backends[i].Addr.Less(r.Backends[j].Addr) })
		fmt.Fprintf(&b, "%-5s %5d/%-6d %5d/%-6d ", r.Mode, r.TCPOK, r.TCPConns, r.UDPOK, r.UDPSent)
		for _, s := range r.Backends {
			fmt.Fprintf(&b, " %v %4.1f%% (%d)", s.Addr, 100*float64(s.TCP+s.UDP)/float64(max(total, 1)), s.Weight)
		}
		b.WriteString("\n")
	}
	b.WriteString("\ndataplane counters\n")
	for _, r := range rs {
		s := r.Stats
		fmt.Fprintf(&b, "%-5s rx %d tx %d pass %d drop %d  new flows %d  live flows %d", r.Mode, s.RX, s.TX, s.Pass, s.Drop, s.NewFlows, r.LiveFlows)
		for i, n := range s.Drops {
			if n > 0 {
				fmt.Fprintf(&b, "  %v=%d", dataplane.DropReason(i), n)
			}
		}
		b.WriteString("\n")
		for _, p := range r.Problems {
			fmt.Fprintf(&b, "      problem: %s\n", p)
		}
	}
	return b.String()
}
