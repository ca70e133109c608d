package packettest_test

import (
	"fmt"
	"net/netip"

	"github.com/culvert-lb/culvert/internal/packettest"
)

func ExampleFixtures() {
	for _, f := range packettest.Fixtures()[:6] {
		fmt.Printf("%-16s %-4s %d bytes\n", f.Name, f.Want, len(f.Frame))
	}
	// Output:
	// tcp-syn          tcp  66 bytes
	// tcp-syn-ack      tcp  66 bytes
	// tcp-ack-payload  tcp  90 bytes
	// tcp-fin          tcp  60 bytes
	// tcp-rst          tcp  60 bytes
	// udp              udp  77 bytes
}

// ExampleICMP4Error builds the "fragmentation needed" error a router sends
// back when a full-sized reply from a virtual IP does not fit the next hop.
func ExampleICMP4Error() {
	vip := packettest.Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 1}, Addr: netip.MustParseAddrPort("198.18.1.1:80")}
	client := packettest.Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 10}, Addr: netip.MustParseAddrPort("198.18.0.10:40000")}
	router := packettest.Endpoint{MAC: [6]byte{2, 0, 0, 0, 0, 254}, Addr: netip.MustParseAddrPort("198.18.0.1:0")}

	reply := packettest.TCP4(vip, client, packettest.FlagACK, nil, packettest.WithPayloadLen(1460), packettest.WithDF())
	quote := packettest.Quote(reply, 8)
	frame := packettest.ICMP4Error(router, vip, 3, 4, 1400, quote, packettest.WithTTL(255))
	fmt.Println(len(reply), len(quote), len(frame))
	// A test then checks the dataplane's translation of frame with
	//	packettest.Check(t, out, packettest.ICMPType(3), packettest.Quoted(packettest.Dst(client), ...))
	// Output:
	// 1514 28 70
}
