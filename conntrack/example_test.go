package conntrack_test

import (
	"fmt"
	"time"

	"github.com/culvert-lb/culvert/conntrack"
)

func ExampleTable() {
	tb, err := conntrack.New[conntrack.Key4](conntrack.Config{MaxFlows: 1000})
	if err != nil {
		panic(err)
	}
	worker := tb.NewReader() // one per dataplane goroutine

	// A worker's batch: read the clock once, bracket the table calls.
	now := conntrack.Time(5 * time.Second)
	worker.Begin()
	f := conntrack.Flow[conntrack.Key4]{
		Orig:     conntrack.Key4{Src: [4]byte{198, 51, 100, 9}, Dst: [4]byte{192, 0, 2, 1}, SrcPort: 40000, DstPort: 80, Proto: 6},
		Reply:    conntrack.Key4{Src: [4]byte{10, 1, 0, 5}, Dst: [4]byte{10, 1, 0, 1}, SrcPort: 8080, DstPort: 61000, Proto: 6},
		HasReply: true,
		Backend:  3,
	}
	e, err := tb.Insert(&f, conntrack.StateSynSent, now)
	fmt.Println(e.State(), err)
	ref := tb.Lookup(&f.Reply) // the SYN-ACK comes back from the backend
	st, ok := tb.Track(ref.E, ref.Dir, conntrack.FlagSYN|conntrack.FlagACK, now)
	fmt.Println(ref.Dir, st, ok)
	worker.End()

	// The sweeper goroutine, every 100 ms or so.
	n := tb.Sweep(now+conntrack.Time(61*time.Second), tb.Capacity(), func(f *conntrack.Flow[conntrack.Key4]) {
		fmt.Println("expired", f.Orig)
	})
	fmt.Println(n, tb.Stats().Live)
	// Output:
	// SynSent <nil>
	// Reply SynRecv true
	// expired tcp 198.51.100.9:40000 -> 192.0.2.1:80
	// 1 0
}
