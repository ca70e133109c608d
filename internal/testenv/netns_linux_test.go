package testenv

import (
	"net"
	"strings"
	"testing"
)

func TestNetNSAndVeth(t *testing.T) {
	RequireRoot(t)
	a, b := NewNetNS(t), NewNetNS(t)
	if a.Name() == b.Name() {
		t.Fatalf("two namespaces share the name %s", a.Name())
	}
	NewVeth(t, a, "va", b, "vb")
	if out := a.MustExec(t, "ip", "link", "show", "va"); !strings.Contains(out, "UP") {
		t.Errorf("va not up: %s", out)
	}
	if _, err := a.Exec("ip", "link", "show", "vb"); err == nil {
		t.Error("vb is visible in a's namespace")
	}
	// Do really switches: vb is visible inside b, and not from the test's
	// own namespace afterwards.
	var idx int
	if err := b.Do(func() error {
		ifc, err := net.InterfaceByName("vb")
		if err == nil {
			idx = ifc.Index
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if idx == 0 {
		t.Fatal("no index for vb inside b")
	}
	if _, err := net.InterfaceByName("vb"); err == nil {
		t.Error("vb visible in the host namespace after Do")
	}
}
