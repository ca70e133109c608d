// Package deptest holds the import rules of docs/architecture.md as a test:
// imports flow one way, cmd -> appliance -> dataplane -> {nat, conntrack,
// nic} -> internal/header, and the hot-path packages stay lean.
package deptest

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const mod = "github.com/culvert-lb/culvert"

type pkg struct {
	ImportPath string
	Imports    []string
	Deps       []string
}

func list(t *testing.T) map[string]pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-json", mod+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	pkgs := map[string]pkg{}
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatal(err)
		}
		pkgs[strings.TrimPrefix(strings.TrimPrefix(p.ImportPath, mod), "/")] = p
	}
	return pkgs
}

func under(path, prefix string) bool { return path == prefix || strings.HasPrefix(path, prefix+"/") }

func TestImportDirection(t *testing.T) {
	pkgs := list(t)
	if len(pkgs) < 5 {
		t.Fatalf("go list found only %d packages", len(pkgs))
	}
	// forbidden[a] lists the trees a (and its subpackages) must never
	// depend on, directly or not.
	forbidden := map[string][]string{
		"dataplane":       {"appliance", "cmd", "bench"},
		"nat":             {"dataplane", "appliance", "conntrack", "nic", "bench"},
		"conntrack":       {"dataplane", "appliance", "nat", "nic", "bench"},
		"nic":             {"dataplane", "appliance", "nat", "conntrack", "bench"},
		"internal/header": {"dataplane", "appliance", "nat", "conntrack", "nic", "bench"},
		"appliance":       {"cmd"},
		"bench":           {"cmd"},
	}
	checked := 0
	for name, p := range pkgs {
		for tree, bad := range forbidden {
			if !under(name, tree) {
				continue
			}
			checked++
			for _, d := range p.Deps {
				if !strings.HasPrefix(d, mod+"/") {
					continue
				}
				dep := strings.TrimPrefix(d, mod+"/")
				for _, b := range bad {
					if under(dep, b) && !under(dep, tree) {
						t.Errorf("%s depends on %s: imports must flow cmd -> appliance -> dataplane -> {nat, conntrack, nic} -> internal/header", name, dep)
					}
				}
			}
		}
	}
	if checked == 0 {
		t.Fatal("no package matched a rule")
	}
}

func TestHeaderStaysLean(t *testing.T) {
	p, ok := list(t)["internal/header"]
	if !ok {
		t.Fatal("internal/header not found")
	}
	for _, imp := range p.Imports {
		switch imp {
		case "fmt", "log", "log/slog", "reflect":
			t.Errorf("internal/header imports %s", imp)
		}
	}
}
