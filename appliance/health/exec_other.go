//go:build !unix

package health

import "os/exec"

// setProcessGroup does nothing: cancellation kills only the command itself.
func setProcessGroup(*exec.Cmd) {}
