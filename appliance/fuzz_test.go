package appliance

import (
	"regexp"
	"strings"
	"testing"
)

var located = regexp.MustCompile(`^cfg\.yaml(:\d+:\d+)?: `)

// FuzzParse: the loader never panics, and every error it reports names the
// file and, where it can, a line and column.
func FuzzParse(f *testing.F) {
	f.Add([]byte(goodYAML))
	f.Add([]byte("services: [{vip: 1.2.3.4}]"))
	f.Add([]byte("interfaces: 3"))
	f.Add([]byte("{"))
	f.Fuzz(func(t *testing.T, data []byte) {
		s, err := Parse("cfg.yaml", data)
		if err == nil {
			if s == nil {
				t.Fatal("nil spec without error")
			}
			return
		}
		for _, line := range strings.Split(err.Error(), "\n") {
			if !located.MatchString(line) {
				t.Fatalf("error line without location: %q", line)
			}
		}
	})
}
