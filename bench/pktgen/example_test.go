package pktgen_test

import (
	"context"
	"fmt"
	"log"
	"net/netip"
	"time"

	"github.com/culvert-lb/culvert/bench/pktgen"
	"github.com/culvert-lb/culvert/nic"
)

// A trial: 64-byte UDP frames from 10,000 flows at 100k frames/s for two
// seconds, counted by an XDP sink and measured by a receiver, each on its
// own backend interface, and merged. Interfaces are opened in the calling
// thread's namespace (in the lab: inside Host.Do). Needs root, so it is
// not run.
func Example() {
	tp, err := pktgen.NewTemplate(pktgen.Spec{
		Kind:   pktgen.UDP,
		SrcMAC: [6]byte{0x02, 0, 0, 0, 0, 0x01}, DstMAC: [6]byte{0x02, 0, 0, 0, 0, 0x02},
		Src:   netip.MustParseAddr("198.19.0.2"),
		Dst:   netip.MustParseAddrPort("198.18.1.1:7"),
		Flows: 10000, FrameSize: 64, Stream: 1,
	})
	if err != nil {
		log.Fatal(err)
	}
	backend := tp.Match() // what the DUT delivers: here, unchanged
	sink, err := pktgen.NewXDPSink(pktgen.SinkConfig{Iface: "b0", Match: backend})
	if err != nil {
		log.Fatal(err)
	}
	defer sink.Close()
	rx, err := pktgen.NewReceiver(pktgen.ReceiverConfig{Iface: "b1", Match: backend})
	if err != nil {
		log.Fatal(err)
	}
	defer rx.Close()
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- rx.Run(ctx) }()

	q, err := nic.OpenXDP(nic.XDPConfig{Iface: "gen0"})
	if err != nil {
		log.Fatal(err)
	}
	defer q.Close()
	g, err := pktgen.NewGenerator(q, tp, pktgen.GeneratorConfig{Rate: 100e3, Pin: true, CPU: 1})
	if err != nil {
		log.Fatal(err)
	}
	sent, err := g.Run(context.Background(), 2*time.Second, 0)
	if err != nil {
		log.Fatal(err)
	}
	time.Sleep(10 * time.Millisecond) // what is in flight lands
	stop()
	if err := <-done; err != nil {
		log.Fatal(err)
	}
	counted, err := sink.Counts()
	if err != nil {
		log.Fatal(err)
	}
	got := rx.Stats()
	s, _ := got.Stream(1)
	fmt.Printf("sent %d at %.0f/s; sink %d, receiver %d (lost between %d..%d: %d), latency %v\n",
		sent.Sent, sent.PPS(), counted.Packets, s.Received, s.First, s.Last, s.Lost(), &got.Latency)
}
