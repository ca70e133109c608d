package nat_test

import (
	"fmt"
	"time"

	"github.com/culvert-lb/culvert/nat"
)

func ExampleSplitPorts() {
	// Each of 4 workers owns a quarter of the local address's ports.
	for w, s := range nat.SplitPorts(nat.DefaultPortLo, nat.DefaultPortHi, 4) {
		fmt.Printf("worker %d: %d-%d\n", w, s[0], s[1])
	}
	// Output:
	// worker 0: 1024-17151
	// worker 1: 17152-33279
	// worker 2: 33280-49407
	// worker 3: 49408-65535
}

func ExamplePortPool() {
	const second = int64(time.Second)
	p := nat.NewPortPool(40000, 40001, nat.DefaultQuarantine)

	// Worker: a new flow takes a port; the flow insert fails, so the port,
	// never sent, goes straight back.
	a, _ := p.Get(0)
	p.Unget(a)

	// Worker: two flows take both ports; a third finds none and is dropped.
	a, _ = p.Get(1 * second)
	b, _ := p.Get(1 * second)
	_, ok := p.Get(1 * second)
	fmt.Println(a, b, ok)

	// Sweeper: the first flow expires at 200 s.
	p.Release(a, 200*second)

	// Worker: the port is in quarantine until 260 s.
	_, ok = p.Get(259 * second)
	fmt.Println(ok, p.Len(), p.Available(259*second))
	c, ok := p.Get(260 * second)
	fmt.Println(c, ok)
	// Output:
	// 40000 40001 false
	// false 1 0
	// 40000 true
}
