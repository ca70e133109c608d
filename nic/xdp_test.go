package nic

import (
	"strings"
	"testing"
)

func TestXDPConfigDefaults(t *testing.T) {
	c := XDPConfig{Iface: "eth0"}.withDefaults()
	want := XDPConfig{Iface: "eth0", Frames: 4096, FrameSize: 2048, Headroom: 256,
		FillSize: 2048, CompSize: 2048, RxSize: 2048, TxSize: 2048}
	if c != want {
		t.Fatalf("defaults %+v, want %+v", c, want)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults invalid: %v", err)
	}
}

func TestXDPConfigHeadroom(t *testing.T) {
	for _, c := range []struct {
		headroom, offset, umem int
	}{
		{20, 256, 0},  // XDP_PACKET_HEADROOM already covers it
		{256, 256, 0}, // the default
		{300, 300, 44},
		{512, 512, 256},
	} {
		cfg := XDPConfig{Headroom: c.headroom}.withDefaults()
		if cfg.frameOffset() != c.offset || cfg.umemHeadroom() != c.umem {
			t.Errorf("headroom %d: frame offset %d, umem headroom %d; want %d, %d",
				c.headroom, cfg.frameOffset(), cfg.umemHeadroom(), c.offset, c.umem)
		}
	}
}

func TestXDPConfigValidate(t *testing.T) {
	for _, c := range []struct {
		name string
		cfg  XDPConfig
		want []string // substrings of the error, one per problem
	}{
		{"no interface", XDPConfig{}, []string{"iface: required"}},
		{"negative queue", XDPConfig{Iface: "x", QueueID: -1}, []string{"queue: -1"}},
		{"frame size not a power of two", XDPConfig{Iface: "x", FrameSize: 3000}, []string{"frame size: 3000"}},
		{"frame size below 2048", XDPConfig{Iface: "x", FrameSize: 1024}, []string{"frame size: 1024"}},
		{"frame size above a page", XDPConfig{Iface: "x", FrameSize: 1 << 16}, []string{"frame size: 65536"}},
		{"headroom below 20", XDPConfig{Iface: "x", Headroom: 10}, []string{"headroom: 10 is less than"}},
		{"headroom leaves no room", XDPConfig{Iface: "x", Headroom: 600}, []string{"headroom: 600 leaves 1448"}},
		{"headroom fits 4k frames", XDPConfig{Iface: "x", Headroom: 600, FrameSize: 4096}, nil},
		{"rings", XDPConfig{Iface: "x", FillSize: 100, CompSize: -4, RxSize: 3, TxSize: 1 << 21},
			[]string{"fill size: 100", "completion size: -4", "rx size: 3", "tx size: 2097152"}},
		{"too many frames", XDPConfig{Iface: "x", Frames: 1<<24 + 1}, []string{"frames: 16777217"}},
		{"everything at once", XDPConfig{QueueID: -2, FrameSize: 100, RxSize: 5},
			[]string{"iface", "queue", "frame size", "rx size"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := c.cfg.Validate()
			if len(c.want) == 0 {
				if err != nil {
					t.Fatalf("rejected: %v", err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			msg := err.Error()
			for _, w := range c.want {
				if !strings.Contains(msg, w) {
					t.Errorf("error %q does not mention %q", msg, w)
				}
			}
			if n := strings.Count(msg, "\n") + 1; n != len(c.want) {
				t.Errorf("%d problems reported, want %d: %q", n, len(c.want), msg)
			}
		})
	}
}

func TestXDPEnumStrings(t *testing.T) {
	for _, c := range []struct {
		v    interface{ String() string }
		want string
	}{
		{ModeCopy, "copy"}, {ModeZeroCopy, "zerocopy"}, {XDPMode(9), "XDPMode(9)"},
		{TXErrAgain, "EAGAIN"}, {TXErrBusy, "EBUSY"}, {TXErrNoBufs, "ENOBUFS"},
		{TXErrNetDown, "ENETDOWN"}, {TXErrOther, "other"}, {TXError(7), "TXError(7)"},
		{frameFree, "free"}, {frameFill, "fill"}, {frameHeld, "held"}, {frameTX, "tx"},
		{xskFrameState(9), "xskFrameState(9)"},
	} {
		if got := c.v.String(); got != c.want {
			t.Errorf("%#v.String() = %q, want %q", c.v, got, c.want)
		}
	}
	if got := (TXErrorCounts{1, 2, 3, 4, 5}).Total(); got != 15 {
		t.Errorf("Total = %d", got)
	}
}
