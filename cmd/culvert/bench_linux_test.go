package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/culvert-lb/culvert/bench/suite"
	"github.com/culvert-lb/culvert/internal/testenv"
)

// TestBenchQuick runs `culvert bench` as a smoke test on a small set: the
// AF_XDP reflector and Culvert nat at 64 bytes, and Culvert's connection
// rate. It checks that every part measured something and the table and
// claims print; speed is the benchmark's business, not this test's.
func TestBenchQuick(t *testing.T) {
	testenv.RequireRoot(t)
	exe, err := os.Executable()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	rep, err := suite.Run(ctx, suite.Options{
		DUTs: []string{suite.DUTReflector, suite.DUTCulvertNAT}, Conns: []string{suite.ConnCulvert}, Sizes: []int{64},
		Steps: 3, Repeats: 1, SearchTrial: 500 * time.Millisecond, Trial: time.Second, ConnTrial: time.Second, NoTrafgen: true,
		Exe: exe, Env: []string{"CULVERT_TEST_AS_MAIN=1"},
	})
	if err != nil {
		t.Fatal(err)
	}
	var b bytes.Buffer
	rep.Table(&b)
	t.Logf("\n%s", b.String())
	for _, tp := range rep.Throughput {
		if tp.Error != "" || tp.PPS.Median <= 0 || len(tp.Search) == 0 {
			t.Errorf("%s: %+v", tp.DUT, tp)
		}
	}
	if c, ok := rep.FindConn(suite.ConnCulvert); !ok || c.Error != "" || c.Rate.Median <= 0 || c.Failures != 0 {
		t.Errorf("connections through culvert: %+v", c)
	}
	if !strings.Contains(b.String(), "culvert nat reaches 85% of the AF_XDP reflector") {
		t.Error("no verdict on the reflector claim")
	}
}
