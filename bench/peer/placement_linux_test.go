package peer

import (
	"encoding/binary"
	"runtime"
	"slices"
	"strconv"
	"testing"

	"github.com/cilium/ebpf/asm"
	"github.com/cilium/ebpf/link"
	"golang.org/x/sys/unix"

	"github.com/culvert-lb/culvert/bench/lab"
	"github.com/culvert-lb/culvert/nic"
)

// TestThreadedNAPI: on a veth with an XDP program attached, threaded NAPI
// makes napi threads that the kernel names over netlink, PinNAPIThreads
// pins them, and turning it off removes them.
func TestThreadedNAPI(t *testing.T) {
	l := lab.UpForTest(t, lab.Options{NoServers: true, Backends: 1})
	h, ifc := l.Appliance, l.ServerSide.Name
	prog, err := loadXDP("pass", func() (asm.Instructions, error) { return xdpPassInstructions(), nil })
	if err != nil {
		t.Fatal(err)
	}
	defer prog.Close()
	var lk link.Link
	if err := h.Do(func() (err error) { lk, _, err = nic.AttachXDP(prog, l.ServerSide.Index, nic.AttachAuto); return err }); err != nil {
		t.Fatal(err)
	}
	defer lk.Close()

	if ts, err := NAPIThreads(h, ifc); err != nil || len(ts) != 0 {
		t.Fatalf("before: napi threads %v, %v; want none", ts, err)
	}
	if err := ThreadedNAPI(h, ifc, true); err != nil {
		t.Fatal(err)
	}
	if v, err := readSysfs(h, ifc, "threaded"); err != nil || v != "1" {
		t.Errorf("threaded reads %q, %v; want 1", v, err)
	}
	cpu := runtime.NumCPU() - 1
	ts, err := PinNAPIThreads(h, ifc, cpu)
	if err != nil {
		t.Fatal(err)
	}
	if len(ts) != l.ServerSide.Queues {
		t.Errorf("%d napi threads, want one per rx queue (%d): %v", len(ts), l.ServerSide.Queues, ts)
	}
	for _, th := range ts {
		var set unix.CPUSet
		if err := unix.SchedGetaffinity(th.PID, &set); err != nil {
			t.Fatal(err)
		}
		if set.Count() != 1 || !set.IsSet(cpu) {
			t.Errorf("napi thread %d (napi %d): affinity %d CPUs, cpu %d set %v; want only cpu %d", th.PID, th.ID, set.Count(), cpu, set.IsSet(cpu), cpu)
		}
		t.Logf("napi %d: thread %d pinned to cpu %d", th.ID, th.PID, cpu)
	}

	if err := ThreadedNAPI(h, ifc, false); err != nil {
		t.Fatal(err)
	}
	if ts, err := NAPIThreads(h, ifc); err != nil || len(ts) != 0 {
		t.Errorf("after: napi threads %v, %v; want none", ts, err)
	}
	if _, err := PinNAPIThreads(h, ifc, cpu); err == nil {
		t.Error("pinned napi threads that are not there")
	}
}

// TestSetRPS: the mask lands in every rx queue's rps_cpus of the
// namespace's interface, and 0 clears it.
func TestSetRPS(t *testing.T) {
	l := lab.UpForTest(t, lab.Options{NoServers: true, Backends: 1, ApplianceQueues: 2})
	h, ifc := l.Appliance, l.ServerSide.Name
	mask := uint64(1)<<runtime.NumCPU() - 1
	for _, m := range []uint64{mask, 0} {
		if err := SetRPS(h, ifc, m); err != nil {
			t.Fatal(err)
		}
		for q := range l.ServerSide.Queues {
			v, err := readSysfs(h, ifc, "queues/rx-"+strconv.Itoa(q)+"/rps_cpus")
			if err != nil {
				t.Fatal(err)
			}
			got, err := strconv.ParseUint(v, 16, 64)
			if err != nil || got != m {
				t.Errorf("rx-%d rps_cpus %q, want %x", q, v, m)
			}
		}
	}
	if err := SetRPS(h, "nosuchif", 1); err == nil {
		t.Error("SetRPS on a missing interface succeeded")
	}
}

// napiMsg builds a napi-get reply: a generic netlink header and u32
// attributes.
func napiMsg(attrs ...[2]uint32) []byte {
	b := []byte{netdevCmdNAPIGet, 1, 0, 0}
	for _, a := range attrs {
		b = binary.NativeEndian.AppendUint16(b, 8)
		b = binary.NativeEndian.AppendUint16(b, uint16(a[0]))
		b = binary.NativeEndian.AppendUint32(b, a[1])
	}
	return b
}

func TestParseNAPI(t *testing.T) {
	msgs := [][]byte{
		napiMsg([2]uint32{netdevANAPIID, 8193}, [2]uint32{netdevANAPIIfindex, 2}, [2]uint32{netdevANAPIPID, 700}),
		napiMsg([2]uint32{netdevANAPIID, 8194}, [2]uint32{netdevANAPIIfindex, 2}),                                 // not threaded
		napiMsg([2]uint32{netdevANAPIID, 8195}, [2]uint32{netdevANAPIIfindex, 3}, [2]uint32{netdevANAPIPID, 701}), // another interface
		napiMsg([2]uint32{netdevANAPIIfindex, 2}, [2]uint32{netdevANAPIPID, 702}, [2]uint32{netdevANAPIID, 8196}, [2]uint32{8, 1}),
	}
	got, err := parseNAPI(msgs, 2)
	if err != nil {
		t.Fatal(err)
	}
	want := []NAPIThread{{ID: 8193, PID: 700}, {ID: 8196, PID: 702}}
	if !slices.Equal(got, want) {
		t.Errorf("got %v, want %v", got, want)
	}
	for name, bad := range map[string][]byte{
		"short header":        {netdevCmdNAPIGet, 1},
		"attribute cut short": append(napiMsg(), 8, 0, 1, 0, 2),
	} {
		if _, err := parseNAPI([][]byte{bad}, 2); err == nil {
			t.Errorf("%s: parsed", name)
		}
	}
}

func TestGenlHeader(t *testing.T) {
	h := genlHeader{cmd: netdevCmdNAPIGet, version: 1}
	if b := h.Serialize(); h.Len() != 4 || !slices.Equal(b, []byte{netdevCmdNAPIGet, 1, 0, 0}) {
		t.Errorf("header %x, length %d; want 0b010000, 4", b, h.Len())
	}
}
