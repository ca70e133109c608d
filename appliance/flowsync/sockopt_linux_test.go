package flowsync

import (
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
)

// TestSetReadBuffer: as root the buffer goes past net.core.rmem_max
// (SO_RCVBUFFORCE); otherwise it is granted up to rmem_max.
func TestSetReadBuffer(t *testing.T) {
	b, err := os.ReadFile("/proc/sys/net/core/rmem_max")
	if err != nil {
		t.Skipf("rmem_max: %v", err)
	}
	rmemMax, err := strconv.Atoi(strings.TrimSpace(string(b)))
	if err != nil {
		t.Fatal(err)
	}
	n, want := 1<<20, min(1<<20, rmemMax)
	if os.Geteuid() == 0 {
		n = 2 * rmemMax
		want = n
	}
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	got, err := setReadBuffer(c, n)
	if err != nil {
		t.Fatalf("setReadBuffer: %v", err)
	}
	if got < want {
		t.Fatalf("asked %d bytes, granted %d, want at least %d (rmem_max %d, uid %d)", n, got, want, rmemMax, os.Geteuid())
	}
}
