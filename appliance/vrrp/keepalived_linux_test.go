package vrrp

import (
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/internal/testenv"
)

// keepalivedBinary returns keepalived's path, or skips the test (fails it
// under CULVERT_TEST_PRIVILEGED=require). Debian package: keepalived.
func keepalivedBinary(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("keepalived"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/keepalived"); err == nil {
		return "/usr/sbin/keepalived"
	}
	msg := "keepalived not installed (Debian: apt-get install keepalived): interop test skipped"
	if os.Getenv("CULVERT_TEST_PRIVILEGED") == "require" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

// keepalived is one keepalived process (monitor and VRRP child, in their
// own process group) running in a lab namespace.
type keepalived struct {
	cmd  *exec.Cmd
	out  *testenv.Buffer
	done chan struct{}
}

// startKeepalived runs keepalived in ns on v0 with VRID 1, VIP
// 198.18.5.100, VRRP version 3 at 100ms, with the given priority and,
// if peer is set, unicast to peer from src.
func startKeepalived(t *testing.T, ns *testenv.NetNS, prio int, src, peer string) *keepalived {
	t.Helper()
	bin := keepalivedBinary(t)
	dir := t.TempDir()
	unicast := ""
	if peer != "" {
		unicast = fmt.Sprintf("    unicast_src_ip %s\n    unicast_peer {\n        %s\n    }\n", src, peer)
	}
	conf := fmt.Sprintf(`global_defs {
    router_id culvert_interop
    vrrp_version 3
    vrrp_garp_master_delay 0
}
vrrp_instance VI_1 {
    state BACKUP
    interface v0
    virtual_router_id 1
    priority %d
    advert_int 0.1
%s    virtual_ipaddress {
        %s/32 dev v0
    }
}
`, prio, unicast, vip5)
	path := filepath.Join(dir, "keepalived.conf")
	if err := os.WriteFile(path, []byte(conf), 0o600); err != nil {
		t.Fatal(err)
	}
	k := &keepalived{out: new(testenv.Buffer), done: make(chan struct{})}
	k.cmd = exec.Command("ip", "netns", "exec", ns.Name(), bin, "-n", "-l", "-D", "-G", "-P", "-R",
		"-f", path, "-p", filepath.Join(dir, "keepalived.pid"), "-r", filepath.Join(dir, "vrrp.pid"))
	k.cmd.Stdout, k.cmd.Stderr = k.out, k.out
	k.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := k.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { k.cmd.Wait(); close(k.done) }()
	t.Cleanup(func() {
		k.kill()
		if t.Failed() || testing.Verbose() {
			t.Logf("keepalived (priority %d) output:\n%s", prio, k.out)
		}
	})
	return k
}

// kill kills keepalived, monitor and VRRP child at once, so that nothing
// sends a priority-0 advertisement: a crash.
func (k *keepalived) kill() {
	syscall.Kill(-k.cmd.Process.Pid, syscall.SIGKILL)
	select {
	case <-k.done:
	case <-time.After(5 * time.Second):
	}
}

// hasVIP reports whether ns has the VIP on v0, as keepalived's master adds
// it.
func hasVIP(t *testing.T, ns *testenv.NetNS) bool {
	t.Helper()
	out := ns.MustExec(t, "ip", "-4", "addr", "show", "dev", "v0")
	return strings.Contains(out, " "+vip5.String()+"/32")
}

// waitVIP polls until ns has (or lacks) the VIP and returns when it saw so.
func waitVIP(t *testing.T, ns *testenv.NetNS, want bool, timeout time.Duration) time.Time {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		if hasVIP(t, ns) == want {
			return time.Now()
		}
		if time.Now().After(deadline) {
			t.Fatalf("VIP %v present = %v after %v, want %v", vip5, !want, timeout, want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestKeepalivedInterop elects and fails over in both directions between a
// Culvert Router (198.18.5.1) and Debian's keepalived (198.18.5.2), both
// VRRP version 3 at 100ms, over multicast and over unicast peers.
// keepalived's state is read from what it does: as master it adds the VIP
// to v0.
func TestKeepalivedInterop(t *testing.T) {
	keepalivedBinary(t)
	for _, mode := range []string{"multicast", "unicast"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			l := newLab(t)
			cfg := func(prio uint8) RouterConfig {
				c := routerConfig(fastGroup(1, prio))
				if mode == "unicast" {
					c.Peers = []netip.Addr{labB}
				}
				return c
			}
			peer := ""
			if mode == "unicast" {
				peer = addrA
			}
			noRejects := func(r *labRouter) {
				t.Helper()
				s := r.Snapshot()
				if s.Rejects != [NumRejectReasons]uint64{} || groupOf(t, s, 1).Rejects != [NumRejectReasons]uint64{} {
					t.Errorf("culvert rejected keepalived's adverts: router %v group %v", s.Rejects, groupOf(t, s, 1).Rejects)
				}
			}

			t.Run("culvert higher, then stopped", func(t *testing.T) {
				k := startKeepalived(t, l.b, 100, addrB, peer)
				waitVIP(t, l.b, true, 5*time.Second)
				c := newLabRouter(t, l.a, cfg(200))
				c.start(t)
				c.rec.waitFor(t, 1, Master, 2*time.Second)
				waitVIP(t, l.b, false, 2*time.Second) // keepalived went backup
				time.Sleep(500 * time.Millisecond)
				if hasVIP(t, l.b) || groupOf(t, c.Snapshot(), 1).State != Master {
					t.Fatal("not stable with culvert as master")
				}
				g := groupOf(t, c.Snapshot(), 1)
				if g.AdvertsReceived == 0 {
					t.Error("culvert never accepted an advert from keepalived")
				}
				noRejects(c)
				stopped := time.Now()
				c.Stop()
				took := waitVIP(t, l.b, true, 2*time.Second).Sub(stopped)
				t.Logf("culvert stopped -> keepalived master (VIP added) after %v (Skew_Time %v)", took, SkewTime(100, 100*time.Millisecond))
				k.kill() // a killed keepalived leaves its VIP behind
				l.b.MustExec(t, "ip", "addr", "del", vip5.String()+"/32", "dev", "v0")
			})

			t.Run("keepalived higher, then killed", func(t *testing.T) {
				k := startKeepalived(t, l.b, 200, addrB, peer)
				waitVIP(t, l.b, true, 5*time.Second)
				c := newLabRouter(t, l.a, cfg(100))
				c.start(t)
				c.rec.waitFor(t, 1, Backup, time.Second)
				time.Sleep(600 * time.Millisecond)
				g := groupOf(t, c.Snapshot(), 1)
				if g.State != Backup || g.Master != labB || g.AdvertsReceived < 3 {
					t.Fatalf("culvert does not follow keepalived: %+v", g)
				}
				noRejects(c)
				c.rec.drain()
				killed := time.Now()
				k.kill()
				e := c.rec.waitFor(t, 1, Master, 2*time.Second)
				took, mdi := e.at.Sub(killed), MasterDownInterval(100, 100*time.Millisecond)
				t.Logf("keepalived killed -> culvert master after %v (Master_Down_Interval %v)", took, mdi)
				if took > mdi+200*time.Millisecond {
					t.Fatalf("failover took %v, want <= %v", took, mdi+200*time.Millisecond)
				}
			})
		})
	}
}
