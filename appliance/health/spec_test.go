package health

import (
	"strings"
	"testing"
	"time"
)

func TestKindString(t *testing.T) {
	for k := KindTCP; k < numKinds; k++ {
		got, err := ParseKind(strings.ToUpper(k.String()))
		if err != nil || got != k {
			t.Errorf("ParseKind(%q) = %v, %v; want %v", k.String(), got, err, k)
		}
	}
	if _, err := ParseKind("icmp"); err == nil {
		t.Error("ParseKind(icmp): no error")
	}
	if got := Kind(9).String(); got != "Kind(9)" {
		t.Errorf("Kind(9).String() = %q", got)
	}
	if got := State(7).String(); got != "State(7)" {
		t.Errorf("State(7).String() = %q", got)
	}
}

func TestWithDefaults(t *testing.T) {
	got := Spec{Kind: KindHTTP}.WithDefaults()
	want := Spec{Kind: KindHTTP, Interval: 2 * time.Second, Timeout: time.Second, Rise: 2, Fall: 3,
		Jitter: 0.1, Path: "/", ExpectStatus: 200}
	if !got.Equal(want) {
		t.Errorf("WithDefaults = %+v, want %+v", got, want)
	}
	if got := (Spec{Kind: KindTCP}).WithDefaults(); got.Path != "" || got.ExpectStatus != 0 {
		t.Errorf("tcp got HTTP defaults: %+v", got)
	}
}

func TestValidate(t *testing.T) {
	tests := []struct {
		name string
		spec Spec
		want []string // substrings of the error; none: valid
	}{
		{"zero is tcp", Spec{}, nil},
		{"http", Spec{Kind: KindHTTPS, Path: "/healthz", ExpectStatus: 204, ExpectBody: "ok"}, nil},
		{"udp", Spec{Kind: KindUDP, Send: []byte("ping"), Expect: []byte("pong")}, nil},
		{"exec", Spec{Kind: KindExec, Command: []string{"true"}}, nil},
		{"unknown kind", Spec{Kind: 9}, []string{"kind: unknown"}},
		{"negatives", Spec{Interval: -1, Timeout: -1, Rise: -1, Fall: -2},
			[]string{"interval:", "timeout: -1ns is negative", "rise:", "fall:"}},
		{"jitter", Spec{Jitter: 0.6}, []string{"jitter:"}},
		{"rise and fall too large", Spec{Rise: 1001, Fall: 5000}, []string{"rise: 1001 is outside", "fall: 5000 is outside"}},
		{"timeout vs default interval", Spec{Timeout: 2 * time.Second}, []string{"timeout: 2s must be less than interval 2s"}},
		{"timeout vs interval", Spec{Interval: 500 * time.Millisecond}, []string{"timeout: 1s must be less than interval 500ms"}},
		{"http path and status", Spec{Kind: KindHTTP, Path: "healthz", ExpectStatus: 42},
			[]string{"path: \"healthz\"", "expect_status: 42"}},
		{"http fields on tcp", Spec{Path: "/", ExpectStatus: 200, ExpectBody: "x"},
			[]string{"path: only", "expect_status: only", "expect_body: only"}},
		{"udp needs send", Spec{Kind: KindUDP}, []string{"send: required"}},
		{"udp fields on http", Spec{Kind: KindHTTP, Send: []byte("a"), Expect: []byte("b")},
			[]string{"send: only", "expect: only"}},
		{"exec needs command", Spec{Kind: KindExec, Command: []string{""}}, []string{"command: required"}},
		{"command on udp", Spec{Kind: KindUDP, Send: []byte("a"), Command: []string{"true"}}, []string{"command: only"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.spec.Validate()
			if len(tt.want) == 0 {
				if err != nil {
					t.Fatalf("Validate: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatalf("Validate: nil, want %q", tt.want)
			}
			lines := strings.Split(err.Error(), "\n")
			if len(lines) != len(tt.want) {
				t.Errorf("Validate reported %d problems, want %d:\n%v", len(lines), len(tt.want), err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("Validate = %q, missing %q", err, w)
				}
			}
		})
	}
}
