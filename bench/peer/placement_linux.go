package peer

import (
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"

	"github.com/vishvananda/netlink/nl"
	"github.com/vishvananda/netns"
	"golang.org/x/sys/unix"

	"github.com/culvert-lb/culvert/bench/lab"
)

// Placement: where the kernel's share of a veth path runs.
//
// A veth transmit delivers the frame to its peer at once, in the sender's
// context. Without NAPI on the peer (no XDP program, GRO off) the frame goes
// to the backlog of the sender's CPU (netif_rx) and the peer's whole
// receive path, IP stack included, runs in the softirq that the sending
// syscall raises on its way out, on the sender's CPU; RPS can move that
// backlog work to other CPUs. With NAPI on the peer (what native XDP and
// AF_XDP need, and what GRO gives) the frame goes on the peer queue's ring
// and the sender schedules the peer's NAPI poll on its own CPU: the peer's
// XDP program, the AF_XDP copy into the UMEM, the XDP_TX or redirect to the
// next veth, all run on the generator's CPU, in its softirq. A benchmark that
// pins the generator and the device under test to different CPUs then
// still charges part of the device's work to the generator's CPU, and the
// two compete there. Threaded NAPI runs the poll in a kernel thread
// (napi/<ifname>-<napi id>) instead, which can be pinned to a CPU of its own.

// ThreadedNAPI turns threaded NAPI on or off for ifname in h's namespace,
// by writing /sys/class/net/<ifname>/threaded. The kernel creates one
// thread per NAPI instance, named napi/<ifname>-<napi id> (cut to 15
// bytes); NAPIThreads finds them and PinNAPIThreads pins them. A veth has
// NAPI instances only while it has an XDP program attached or GRO on;
// otherwise the kernel refuses (EOPNOTSUPP on older kernels) or the
// setting waits for NAPI to appear.
//
// sysfs shows the devices of the network namespace of whoever mounted it,
// so the write goes through a sysfs mounted afresh in h's namespace, in a
// private mount namespace on a thread of its own that exits afterwards.
func ThreadedNAPI(h *lab.Host, ifname string, on bool) error {
	v := "0"
	if on {
		v = "1"
	}
	return WriteSysfs(h, ifname, "threaded", v)
}

// SetRPS sets the receive packet steering CPUs of every receive queue of
// ifname in h's namespace (/sys/class/net/<ifname>/queues/rx-*/rps_cpus):
// bit i of cpumask is CPU i, 0 turns RPS off. RPS applies to frames that go
// through the backlog, which on a veth means a peer without NAPI: the
// kernel-stack peers (NFTables, HAProxy) and the backends' servers.
func SetRPS(h *lab.Host, ifname string, cpumask uint64) error {
	err := withSysfs(h, func(sys string) error {
		qs, err := filepath.Glob(filepath.Join(sys, "class/net", ifname, "queues/rx-*"))
		if err != nil {
			return err
		}
		if len(qs) == 0 {
			return errors.New("no receive queue in sysfs")
		}
		for _, q := range qs {
			if err := os.WriteFile(filepath.Join(q, "rps_cpus"), []byte(strconv.FormatUint(cpumask, 16)), 0); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("rps %x on %s: %w", cpumask, ifname, err)
	}
	return nil
}

// WriteSysfs writes value to /sys/class/net/<ifname>/<rel> in h's
// namespace: napi_defer_hard_irqs and gro_flush_timeout for preferred busy
// polling, say.
func WriteSysfs(h *lab.Host, ifname, rel, value string) error {
	err := withSysfs(h, func(sys string) error {
		return os.WriteFile(filepath.Join(sys, "class/net", ifname, rel), []byte(value), 0)
	})
	if err != nil {
		return fmt.Errorf("%s of %s = %s: %w", rel, ifname, value, err)
	}
	return nil
}

// readSysfs reads a file under /sys/class/net/<ifname>/ in h's namespace:
// rel is relative to the interface's directory.
func readSysfs(h *lab.Host, ifname, rel string) (string, error) {
	var out string
	err := withSysfs(h, func(sys string) error {
		b, err := os.ReadFile(filepath.Join(sys, "class/net", ifname, rel))
		out = strings.TrimSpace(string(b))
		return err
	})
	return out, err
}

// withSysfs runs fn with sys naming a sysfs mounted in h's network
// namespace. It runs on a thread locked for good: the thread enters h's
// namespace and a mount namespace of its own (with every mount private, so
// nothing propagates back), mounts sysfs over /sys there, and exits with
// its goroutine, taking both namespaces with it.
func withSysfs(h *lab.Host, fn func(sys string) error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the goroutine
		errc <- func() error {
			if err := netns.Set(h.NS); err != nil {
				return fmt.Errorf("enter %s: %w", h.Name, err)
			}
			if err := unix.Unshare(unix.CLONE_NEWNS); err != nil {
				return fmt.Errorf("new mount namespace: %w", err)
			}
			if err := unix.Mount("", "/", "", unix.MS_REC|unix.MS_PRIVATE, ""); err != nil {
				return fmt.Errorf("make mounts private: %w", err)
			}
			if err := unix.Mount("sysfs", "/sys", "sysfs", unix.MS_NOSUID|unix.MS_NODEV|unix.MS_NOEXEC, ""); err != nil {
				return fmt.Errorf("mount sysfs: %w", err)
			}
			return fn("/sys")
		}()
	}()
	return <-errc
}

// NAPIThreads returns the NAPI threads of ifname in h's namespace: none when
// threaded NAPI is off. The kernel reports them over netlink (the netdev
// family's napi-get, Linux 6.9 and later); the thread names in /proc are
// cut to 15 bytes and repeat across namespaces (every lab host has a
// <lab>-eth0), so they cannot name the threads alone.
func NAPIThreads(h *lab.Host, ifname string) ([]NAPIThread, error) {
	var out []NAPIThread
	err := h.Do(func() error {
		idx, err := ifindex(ifname)
		if err != nil {
			return err
		}
		out, err = dumpNAPI(idx)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("napi threads of %s: %w", ifname, err)
	}
	for _, t := range out {
		comm, err := os.ReadFile(fmt.Sprintf("/proc/%d/comm", t.PID))
		if err != nil || !strings.HasPrefix(string(comm), "napi/") {
			return nil, fmt.Errorf("napi threads of %s: pid %d (napi %d) is %q (%v), not a napi thread", ifname, t.PID, t.ID, comm, err)
		}
	}
	return out, nil
}

// PinNAPIThreads pins every NAPI thread of ifname in h's namespace to cpu
// and returns them. Threaded NAPI must be on (ThreadedNAPI); it fails if
// there is no thread to pin.
func PinNAPIThreads(h *lab.Host, ifname string, cpu int) ([]NAPIThread, error) {
	ts, err := NAPIThreads(h, ifname)
	if err != nil {
		return nil, err
	}
	if len(ts) == 0 {
		return nil, fmt.Errorf("pin napi threads of %s: none (threaded napi off, or no napi: attach XDP or turn GRO on)", ifname)
	}
	for _, t := range ts {
		var set unix.CPUSet
		set.Set(cpu)
		if err := unix.SchedSetaffinity(t.PID, &set); err != nil {
			return nil, fmt.Errorf("pin napi thread %d of %s to cpu %d: %w", t.PID, ifname, cpu, err)
		}
	}
	return ts, nil
}

// The netdev generic netlink family (include/uapi/linux/netdev.h).
const (
	netdevCmdNAPIGet   = 11 // NETDEV_CMD_NAPI_GET
	netdevANAPIIfindex = 1  // NETDEV_A_NAPI_IFINDEX, u32
	netdevANAPIID      = 2  // NETDEV_A_NAPI_ID, u32
	netdevANAPIPID     = 4  // NETDEV_A_NAPI_PID, u32: only while threaded
)

// dumpNAPI asks the kernel for the NAPI instances of interface ifindex in
// the calling thread's namespace and returns those running in a thread.
func dumpNAPI(ifindex int) ([]NAPIThread, error) {
	fam, err := genlFamily("netdev")
	if err != nil {
		return nil, fmt.Errorf("netdev netlink family: %w", err)
	}
	req := nl.NewNetlinkRequest(int(fam), unix.NLM_F_DUMP)
	req.AddData(genlHeader{cmd: netdevCmdNAPIGet, version: 1})
	req.AddData(nl.NewRtAttr(netdevANAPIIfindex, nl.Uint32Attr(uint32(ifindex))))
	msgs, err := req.Execute(unix.NETLINK_GENERIC, 0)
	if err != nil {
		return nil, fmt.Errorf("napi-get: %w", err)
	}
	return parseNAPI(msgs, ifindex)
}

// genlFamily returns the id of the named generic netlink family.
func genlFamily(name string) (uint16, error) {
	req := nl.NewNetlinkRequest(unix.GENL_ID_CTRL, unix.NLM_F_ACK)
	req.AddData(genlHeader{cmd: unix.CTRL_CMD_GETFAMILY, version: 1})
	req.AddData(nl.NewRtAttr(unix.CTRL_ATTR_FAMILY_NAME, nl.ZeroTerminated(name)))
	msgs, err := req.Execute(unix.NETLINK_GENERIC, 0)
	if err != nil {
		return 0, err
	}
	for _, m := range msgs {
		if len(m) < sizeofGenlmsghdr {
			continue
		}
		attrs, err := nl.ParseRouteAttr(m[sizeofGenlmsghdr:])
		if err != nil {
			return 0, err
		}
		for _, a := range attrs {
			if a.Attr.Type == unix.CTRL_ATTR_FAMILY_ID && len(a.Value) >= 2 {
				return binary.NativeEndian.Uint16(a.Value), nil
			}
		}
	}
	return 0, fmt.Errorf("no id in the reply for %q", name)
}

// genlHeader is a generic netlink message header (struct genlmsghdr).
// nl.Genlmsg of vishvananda/netlink v1.1.0 serializes 4 bytes from its
// 2-byte struct, so the reserved field carries whatever follows it in
// memory, and families that check it (netdev) answer EINVAL.
type genlHeader struct{ cmd, version uint8 }

const sizeofGenlmsghdr = 4

func (h genlHeader) Len() int { return sizeofGenlmsghdr }

func (h genlHeader) Serialize() []byte { return []byte{h.cmd, h.version, 0, 0} }

// parseNAPI decodes napi-get replies (each a generic netlink header and
// attributes) and keeps the instances of ifindex that have a thread.
func parseNAPI(msgs [][]byte, ifindex int) ([]NAPIThread, error) {
	var out []NAPIThread
	for _, m := range msgs {
		if len(m) < sizeofGenlmsghdr {
			return nil, fmt.Errorf("napi-get: a %d-byte reply", len(m))
		}
		attrs, err := nl.ParseRouteAttr(m[sizeofGenlmsghdr:])
		if err != nil {
			return nil, fmt.Errorf("napi-get: %w", err)
		}
		var t NAPIThread
		idx := -1
		for _, a := range attrs {
			if len(a.Value) < 4 {
				continue
			}
			v := binary.NativeEndian.Uint32(a.Value)
			switch a.Attr.Type {
			case netdevANAPIIfindex:
				idx = int(v)
			case netdevANAPIID:
				t.ID = v
			case netdevANAPIPID:
				t.PID = int(v)
			}
		}
		if idx == ifindex && t.PID > 0 {
			out = append(out, t)
		}
	}
	return out, nil
}
