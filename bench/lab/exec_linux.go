//go:build linux

package lab

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"syscall"

	"golang.org/x/sys/unix"
)

// Commands run in a namespace by re-executing the current binary.
//
// A child process starts in the namespace of the thread that forks it, so
// one could lock a thread, setns, call cmd.Start and setns back. But that
// only works if the lab calls Start, and Host.Command hands back an
// ordinary *exec.Cmd for the caller to Start, Run or Output whenever it
// likes, from any thread. So instead the command runs /proc/self/exe with
// argv
//
//	execArg0 <namespace path> <program path> <argv...>
//
// and this package's init, seeing execArg0, joins the namespace and
// execve's the program with the remaining argv and the environment the
// caller set. It needs no nsenter, no iproute2, and works in any binary
// that imports this package (tests included). Init runs before main, on the
// main thread, which the runtime keeps locked during init; execve takes the
// whole process, and the program starts in the namespace.
const execArg0 = "culvert-lab-netns-exec"

func init() {
	if len(os.Args) >= 4 && os.Args[0] == execArg0 {
		execInNS(os.Args[1], os.Args[2], os.Args[3:])
	}
}

// execInNS joins the namespace pinned at nsPath and replaces the process
// with the program at path. It never returns.
func execInNS(nsPath, path string, argv []string) {
	runtime.LockOSThread()
	fd, err := unix.Open(nsPath, unix.O_RDONLY|unix.O_CLOEXEC, 0)
	if err == nil {
		err = unix.Setns(fd, unix.CLONE_NEWNET)
		unix.Close(fd)
	}
	if err == nil {
		err = syscall.Exec(path, argv, os.Environ())
	}
	fmt.Fprintf(os.Stderr, "culvert lab: run %s in %s: %v\n", path, nsPath, err)
	os.Exit(127)
}

// Command returns a command that starts inside the host's namespace, like
// `ip netns exec <Name> name args...`. The caller owns it as any
// exec.Cmd (Env, Dir, Stdin, Stdout, SysProcAttr, Start/Run/Output/Wait),
// except Path and Args, which carry the re-exec described above: do not
// replace them, though appending to Args adds arguments as usual. A
// program that cannot be found is reported by Start, as with exec.Command.
// If the namespace is gone when the command starts, the command exits with
// status 127.
func (h *Host) Command(name string, arg ...string) *exec.Cmd {
	return h.wrap(exec.Command(name, arg...))
}

// CommandContext is Command with exec.CommandContext's cancellation.
func (h *Host) CommandContext(ctx context.Context, name string, arg ...string) *exec.Cmd {
	return h.wrap(exec.CommandContext(ctx, name, arg...))
}

func (h *Host) wrap(cmd *exec.Cmd) *exec.Cmd {
	target := cmd.Path
	cmd.Path = "/proc/self/exe"
	cmd.Args = append([]string{execArg0, filepath.Join(netnsDir, h.Name), target}, cmd.Args...)
	return cmd
}
