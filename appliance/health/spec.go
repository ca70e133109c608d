package health

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"
)

// Kind is the kind of a health check.
type Kind uint8

// Check kinds. The zero Kind is KindTCP.
const (
	KindTCP   Kind = iota // TCP connect, then close
	KindHTTP              // HTTP GET, expected status, optional body match
	KindHTTPS             // as KindHTTP over TLS (certificate not verified)
	KindUDP               // send a datagram, expect a reply
	KindExec              // run a command; exit status 0 is healthy
	numKinds
)

var kindNames = [numKinds]string{"tcp", "http", "https", "udp", "exec"}

// String returns the kind's configuration name ("tcp", "http", ...).
func (k Kind) String() string {
	if k < numKinds {
		return kindNames[k]
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// ParseKind parses a kind's configuration name, case-insensitively.
func ParseKind(s string) (Kind, error) {
	for k, n := range kindNames {
		if strings.EqualFold(s, n) {
			return Kind(k), nil
		}
	}
	return 0, fmt.Errorf("unknown health check kind %q (want tcp, http, https, udp or exec)", s)
}

// Defaults applied by Spec.WithDefaults to zero fields.
const (
	DefaultInterval     = 2 * time.Second
	DefaultTimeout      = 1 * time.Second
	DefaultRise         = 2
	DefaultFall         = 3
	DefaultJitter       = 0.1
	DefaultPath         = "/"
	DefaultExpectStatus = 200

	// MaxJitter is the largest accepted Jitter.
	MaxJitter = 0.5
	// MaxRiseFall is the largest accepted Rise or Fall.
	MaxRiseFall = 1000
)

// Spec describes one health check. A zero field takes its default (see
// WithDefaults), so the zero Spec is a TCP connect check every 2s with a 1s
// timeout, rise 2, fall 3 and 10% jitter. A Spec is a plain value; it is not
// modified by the package.
type Spec struct {
	Kind Kind

	// Interval between probes (default 2s) and the bound on each probe
	// (default 1s). Timeout must be less than Interval.
	Interval, Timeout time.Duration

	// Rise consecutive successes make a target Up (default 2); Fall
	// consecutive failures make it Down (default 3). The names follow
	// HAProxy and keepalived.
	Rise, Fall int

	// Jitter is the fraction of Interval, in [0, 0.5], by which each period
	// is randomly stretched or shrunk (default 0.1). Zero takes the default.
	Jitter float64

	// HTTP and HTTPS: the request path (default "/"), the expected status
	// code (default 200; redirects are not followed) and, if not empty, a
	// string the first 64 KiB of the body must contain.
	Path         string
	ExpectStatus int
	ExpectBody   string

	// UDP: the datagram to send (required) and bytes the reply must contain
	// (empty: any reply is healthy).
	Send, Expect []byte

	// Exec: the argv of the command (required). Exit status 0 is healthy.
	// The command sees the environment of the appliance plus
	// CULVERT_BACKEND_ADDR and CULVERT_BACKEND_PORT (the probed port). It
	// runs in the appliance's own network namespace: Options.Dial does not
	// apply to it.
	Command []string

	// Port to probe; 0 probes the backend's own port.
	Port uint16
}

// WithDefaults returns s with every zero field that has a default set to it.
// Fields that do not apply to s.Kind are left alone.
func (s Spec) WithDefaults() Spec {
	if s.Interval == 0 {
		s.Interval = DefaultInterval
	}
	if s.Timeout == 0 {
		s.Timeout = DefaultTimeout
	}
	if s.Rise == 0 {
		s.Rise = DefaultRise
	}
	if s.Fall == 0 {
		s.Fall = DefaultFall
	}
	if s.Jitter == 0 {
		s.Jitter = DefaultJitter
	}
	if s.Kind == KindHTTP || s.Kind == KindHTTPS {
		if s.Path == "" {
			s.Path = DefaultPath
		}
		if s.ExpectStatus == 0 {
			s.ExpectStatus = DefaultExpectStatus
		}
	}
	return s
}

// Validate reports every problem with s (after defaults), each prefixed with
// the field's configuration name, joined with errors.Join; nil if s is
// usable. Fields that do not apply to the kind must be empty.
func (s Spec) Validate() error {
	var errs []error
	add := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if s.Kind >= numKinds {
		add("kind: unknown kind %d", uint8(s.Kind))
	}
	if s.Interval < 0 {
		add("interval: %v is negative", s.Interval)
	}
	if s.Timeout < 0 {
		add("timeout: %v is negative", s.Timeout)
	}
	if s.Rise < 0 || s.Rise > MaxRiseFall {
		add("rise: %d is outside [0, %d]", s.Rise, MaxRiseFall)
	}
	if s.Fall < 0 || s.Fall > MaxRiseFall {
		add("fall: %d is outside [0, %d]", s.Fall, MaxRiseFall)
	}
	if s.Jitter < 0 || s.Jitter > MaxJitter || s.Jitter != s.Jitter {
		add("jitter: %v is outside [0, %v]", s.Jitter, MaxJitter)
	}
	d := s.WithDefaults()
	if s.Interval >= 0 && s.Timeout >= 0 && d.Timeout >= d.Interval {
		add("timeout: %v must be less than interval %v", d.Timeout, d.Interval)
	}
	isHTTP := s.Kind == KindHTTP || s.Kind == KindHTTPS
	if isHTTP {
		if !strings.HasPrefix(d.Path, "/") {
			add("path: %q does not start with /", s.Path)
		}
		if strings.ContainsAny(d.Path, " \t\r\n") {
			add("path: %q contains white space", s.Path)
		}
		if d.ExpectStatus < 100 || d.ExpectStatus > 599 {
			add("expect_status: %d is not an HTTP status (100-599)", s.ExpectStatus)
		}
	} else {
		if s.Path != "" {
			add("path: only for http and https checks")
		}
		if s.ExpectStatus != 0 {
			add("expect_status: only for http and https checks")
		}
		if s.ExpectBody != "" {
			add("expect_body: only for http and https checks")
		}
	}
	if s.Kind == KindUDP {
		if len(s.Send) == 0 {
			add("send: required for udp checks")
		}
	} else {
		if len(s.Send) != 0 {
			add("send: only for udp checks")
		}
		if len(s.Expect) != 0 {
			add("expect: only for udp checks")
		}
	}
	if s.Kind == KindExec {
		if len(s.Command) == 0 || s.Command[0] == "" {
			add("command: required for exec checks")
		}
	} else if len(s.Command) != 0 {
		add("command: only for exec checks")
	}
	return errors.Join(errs...)
}

// Equal reports whether s and o describe the same check.
func (s Spec) Equal(o Spec) bool {
	return s.Kind == o.Kind && s.Interval == o.Interval && s.Timeout == o.Timeout &&
		s.Rise == o.Rise && s.Fall == o.Fall && s.Jitter == o.Jitter &&
		s.Path == o.Path && s.ExpectStatus == o.ExpectStatus && s.ExpectBody == o.ExpectBody &&
		bytes.Equal(s.Send, o.Send) && bytes.Equal(s.Expect, o.Expect) &&
		slices.Equal(s.Command, o.Command) && s.Port == o.Port
}

// Target is one backend's check: the backend's address and the check to run
// against it. Targets are identified by Addr.
type Target struct {
	Addr netip.AddrPort
	Spec Spec
}

// probeAddr is the address probes connect to: Addr with Spec.Port if set.
func (t Target) probeAddr() netip.AddrPort {
	if t.Spec.Port != 0 {
		return netip.AddrPortFrom(t.Addr.Addr(), t.Spec.Port)
	}
	return t.Addr
}
