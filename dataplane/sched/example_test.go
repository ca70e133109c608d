package sched_test

import (
	"fmt"
	"net/netip"

	"github.com/culvert-lb/culvert/dataplane/sched"
)

func Example() {
	key, _ := sched.ParseHashKey("000102030405060708090a0b0c0d0e0f")
	pool := []sched.Backend{
		{ID: 0, Addr: netip.MustParseAddr("10.1.0.1"), Port: 8080, Weight: 1},
		{ID: 1, Addr: netip.MustParseAddr("10.1.0.2"), Port: 8080, Weight: 2},
		{ID: 2, Addr: netip.MustParseAddr("10.1.0.3"), Port: 8080, Weight: 0}, // drained
	}
	s, err := sched.New(sched.KindMaglev, key, sched.DefaultMaglevSize, pool, nil)
	if err != nil {
		panic(err)
	}
	var cursor uint32 // one per worker and service
	h := sched.FlowHash4(&key, [4]byte{198, 51, 100, 7}, [4]byte{192, 0, 2, 1}, 40000, 443, 6)
	id, ok := s.Pick(h, &cursor)
	fmt.Println(id, ok)
	// Output: 1 true
}
