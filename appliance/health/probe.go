package health

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"time"
)

// Errors a probe returns, wrapped with detail, when the backend answered but
// not as expected. Network failures are returned as the dialer or
// connection reported them.
var (
	ErrStatus = errors.New("unexpected status")
	ErrBody   = errors.New("body does not match")
	ErrReply  = errors.New("reply does not match")
)

// Limits on what a probe reads.
const (
	maxBody     = 64 << 10 // bytes of an HTTP body searched for ExpectBody
	maxDatagram = 64 << 10 // UDP reply buffer
	maxOutput   = 512      // bytes of a command's output kept for the error
	execWait    = 100 * time.Millisecond
)

// Probe runs one probe of t now, bounded by ctx and t.Spec.Timeout (after
// defaults), and returns nil if the backend is healthy. It does not touch
// the checker's state; the console uses it for a one-off "test health".
// Safe for concurrent use.
func (c *Checker) Probe(ctx context.Context, t Target) error {
	t.Spec = t.Spec.WithDefaults()
	ctx, cancel := context.WithTimeout(ctx, t.Spec.Timeout)
	defer cancel()
	addr := t.probeAddr()
	var err error
	switch t.Spec.Kind {
	case KindTCP:
		err = c.probeTCP(ctx, addr.String())
	case KindHTTP:
		err = c.probeHTTP(ctx, "http", addr.String(), t.Spec)
	case KindHTTPS:
		err = c.probeHTTP(ctx, "https", addr.String(), t.Spec)
	case KindUDP:
		err = c.probeUDP(ctx, addr.String(), t.Spec)
	case KindExec:
		err = probeExec(ctx, addr.Addr().String(), addr.Port(), t.Spec)
	default:
		err = fmt.Errorf("unknown check kind %v", t.Spec.Kind)
	}
	if err != nil {
		return fmt.Errorf("%v check %v: %w", t.Spec.Kind, addr, err)
	}
	return nil
}

func (c *Checker) probeTCP(ctx context.Context, addr string) error {
	conn, err := c.dial(ctx, "tcp", addr)
	if err != nil {
		return err
	}
	return conn.Close()
}

func (c *Checker) probeHTTP(ctx context.Context, scheme, addr string, s Spec) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+addr+s.Path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("User-Agent", "culvert-health")
	resp, err := c.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != s.ExpectStatus {
		return fmt.Errorf("%w %d (want %d)", ErrStatus, resp.StatusCode, s.ExpectStatus)
	}
	if s.ExpectBody == "" {
		return nil
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxBody))
	if err != nil {
		return fmt.Errorf("read body: %w", err)
	}
	if !bytes.Contains(body, []byte(s.ExpectBody)) {
		return fmt.Errorf("%w: no %q in the first %d bytes", ErrBody, s.ExpectBody, len(body))
	}
	return nil
}

func (c *Checker) probeUDP(ctx context.Context, addr string, s Spec) error {
	conn, err := c.dial(ctx, "udp", addr)
	if err != nil {
		return err
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	// Unblock the read if ctx is cancelled before its deadline (target
	// removed, checker stopped).
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	if _, err := conn.Write(s.Send); err != nil {
		return err
	}
	buf := make([]byte, maxDatagram)
	n, err := conn.Read(buf)
	if err != nil {
		if ctx.Err() != nil || errors.Is(err, os.ErrDeadlineExceeded) {
			// The connection's deadline is ctx's, and may fire first.
			cause := ctx.Err()
			if cause == nil {
				cause = context.DeadlineExceeded
			}
			return fmt.Errorf("no reply: %w", cause)
		}
		return err
	}
	if !bytes.Contains(buf[:n], s.Expect) {
		return fmt.Errorf("%w: got %q, want %q in it", ErrReply, truncate(buf[:n], 64), s.Expect)
	}
	return nil
}

func probeExec(ctx context.Context, host string, port uint16, s Spec) error {
	cmd := exec.CommandContext(ctx, s.Command[0], s.Command[1:]...)
	cmd.Env = append(os.Environ(),
		"CULVERT_BACKEND_ADDR="+host,
		"CULVERT_BACKEND_PORT="+strconv.Itoa(int(port)))
	var out capped
	cmd.Stdout = &out
	cmd.Stderr = &out
	cmd.WaitDelay = execWait
	setProcessGroup(cmd)
	err := cmd.Run()
	if err == nil {
		return nil
	}
	if ctx.Err() != nil {
		err = fmt.Errorf("%w (%v)", ctx.Err(), err)
	}
	if msg := strings.TrimSpace(string(out.b)); msg != "" {
		return fmt.Errorf("%s: %w: %s", s.Command[0], err, msg)
	}
	return fmt.Errorf("%s: %w", s.Command[0], err)
}

// capped keeps the first maxOutput bytes written to it and discards the
// rest, so that a chatty command cannot grow the appliance's memory.
type capped struct{ b []byte }

func (w *capped) Write(p []byte) (int, error) {
	if room := maxOutput - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func truncate(b []byte, n int) []byte {
	if len(b) > n {
		return b[:n]
	}
	return b
}

// defaultDial dials from the appliance's own network stack.
func defaultDial(ctx context.Context, network, addr string) (net.Conn, error) {
	var d net.Dialer
	return d.DialContext(ctx, network, addr)
}
