package main

import (
	"os"
	"testing"
)

// The lab tests run this test binary as the culvert command (daemon,
// decap) inside the lab's namespaces: with CULVERT_TEST_AS_MAIN set it is
// main.
func TestMain(m *testing.M) {
	if os.Getenv("CULVERT_TEST_AS_MAIN") == "1" {
		main()
		os.Exit(0)
	}
	os.Exit(m.Run())
}
