package conntrack

import (
	"testing"
	"time"
)

type step struct {
	dir   Dir
	flags uint8
	at    Time
	want  State
	ttl   time.Duration // timeout expected to run from at
}

const (
	syn    = FlagSYN
	synack = FlagSYN | FlagACK
	ack    = FlagACK
	finack = FlagFIN | FlagACK
	rst    = FlagRST
	none   = 0
)

var (
	orig  = DirOriginal
	reply = DirReply
	to    = DefaultTimeouts()
)

func TestStateMachine(t *testing.T) {
	tests := []struct {
		name  string
		flow  Flow[Key4]
		start State
		steps []step
	}{
		{"nat/handshake-close-reopen", natFlow4(1, 6), StateSynSent, []step{
			{orig, syn, 1 * sec, StateSynSent, to.SynSent}, // retransmitted SYN
			{reply, synack, 2 * sec, StateSynRecv, to.SynRecv},
			{orig, ack, 3 * sec, StateEstablished, to.Established},
			{reply, ack, 4 * sec, StateEstablished, to.Established},
			{orig, syn, 5 * sec, StateEstablished, to.Established}, // stray SYN does not reopen
			{orig, finack, 10 * sec, StateFinWait, to.FinWait},
			{reply, ack, 11 * sec, StateFinWait, to.FinWait},
			{orig, finack, 12 * sec, StateFinWait, to.FinWait}, // same side again
			{reply, finack, 13 * sec, StateTimeWait, to.TimeWait},
			{orig, ack, 14 * sec, StateTimeWait, to.TimeWait},
			{orig, syn, 20 * sec, StateSynSent, to.SynSent}, // port reuse reopens
			{reply, synack, 21 * sec, StateSynRecv, to.SynRecv},
			{orig, ack, 22 * sec, StateEstablished, to.Established},
		}},
		{"nat/server-closes-first", natFlow4(2, 6), StateEstablished, []step{
			{reply, finack, 1 * sec, StateFinWait, to.FinWait},
			{reply, finack, 2 * sec, StateFinWait, to.FinWait},
			{orig, finack, 3 * sec, StateTimeWait, to.TimeWait},
		}},
		{"nat/rst", natFlow4(3, 6), StateEstablished, []step{
			{reply, rst, 1 * sec, StateClose, to.Close},
			{orig, ack, 2 * sec, StateClose, to.Close},
			{orig, syn, 3 * sec, StateSynSent, to.SynSent},
			{orig, rst | ack, 4 * sec, StateClose, to.Close},
		}},
		{"nat/ack-without-synack-stays", natFlow4(4, 6), StateSynSent, []step{
			{orig, ack, 1 * sec, StateSynSent, to.SynSent},
			{reply, rst, 2 * sec, StateClose, to.Close}, // backend refused
		}},
		{"nat/fin-during-handshake", natFlow4(5, 6), StateSynRecv, []step{
			{orig, finack, 1 * sec, StateFinWait, to.FinWait},
		}},
		{"dsr/handshake-close", dsrFlow4(6, 6), StateSynSent, []step{
			{orig, syn, 1 * sec, StateSynSent, to.SynSent},
			{orig, ack, 2 * sec, StateEstablished, to.Established}, // client ACK after its SYN
			{orig, ack, 3 * sec, StateEstablished, to.Established},
			{orig, finack, 4 * sec, StateFinWait, to.FinWait},
			{orig, finack, 5 * sec, StateFinWait, to.FinWait}, // never TimeWait: server FIN unseen
			{orig, ack, 6 * sec, StateFinWait, to.FinWait},
			{orig, rst, 7 * sec, StateClose, to.Close},
			{orig, syn, 8 * sec, StateSynSent, to.SynSent},
		}},
		{"dsr/rst-in-handshake", dsrFlow4(7, 6), StateSynSent, []step{
			{orig, rst, 1 * sec, StateClose, to.Close},
		}},
		{"dsr/timewait-reopens", dsrFlow4(8, 6), StateTimeWait, []step{
			{orig, ack, 1 * sec, StateTimeWait, to.TimeWait},
			{orig, syn, 2 * sec, StateSynSent, to.SynSent},
		}},
		{"nat/udp", natFlow4(9, 17), StateUDPUnreplied, []step{
			{orig, none, 1 * sec, StateUDPUnreplied, to.UDPUnreplied},
			{orig, none, 2 * sec, StateUDPUnreplied, to.UDPUnreplied},
			{reply, none, 3 * sec, StateUDP, to.UDP},
			{orig, syn, 4 * sec, StateUDP, to.UDP}, // TCP flags mean nothing to UDP
		}},
		{"dsr/udp", dsrFlow4(10, 17), StateUDP, []step{
			{orig, none, 1 * sec, StateUDP, to.UDP},
		}},
		{"nat/icmp-uses-udp-machine", natFlow4(11, 1), StateUDPUnreplied, []step{
			{reply, none, 1 * sec, StateUDP, to.UDP},
		}},
		{"persist", Flow[Key4]{Orig: key4(12, ProtoPersist), PersistTimeout: 360}, StatePersist, []step{
			{orig, none, 1 * sec, StatePersist, 360 * time.Second},
			{orig, rst, 100 * sec, StatePersist, 360 * time.Second},
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable[Key4](t, Config{MaxFlows: 8})
			r := tb.NewReader()
			r.Begin()
			defer r.End()
			e, err := tb.Insert(&tc.flow, tc.start, 0)
			if err != nil {
				t.Fatal(err)
			}
			for i, s := range tc.steps {
				got, ok := tb.Track(e, s.dir, s.flags, s.at)
				if !ok || got != s.want {
					t.Fatalf("step %d (%v %#x at %v): got %v, %v; want %v", i, s.dir, s.flags, time.Duration(s.at), got, ok, s.want)
				}
				if e.State() != s.want {
					t.Fatalf("step %d: entry state %v, want %v", i, e.State(), s.want)
				}
				// Timeouts here are whole seconds and steps fall on whole
				// seconds, so the deadline is exactly at + ttl.
				if want := uint32((time.Duration(s.at) + s.ttl) / time.Second); deadlineOf(e) != want {
					t.Fatalf("step %d: deadline %ds, want %ds", i, deadlineOf(e), want)
				}
			}
		})
	}
}

func TestInsertState(t *testing.T) {
	tests := []struct {
		name string
		flow Flow[Key4]
		st   State
		want State // StateNone: ErrInvalid
		ttl  time.Duration
	}{
		{"tcp/synsent", natFlow4(1, 6), StateSynSent, StateSynSent, to.SynSent},
		{"tcp/established", dsrFlow4(2, 6), StateEstablished, StateEstablished, to.Established},
		{"tcp/udp-state", natFlow4(3, 6), StateUDP, StateNone, 0},
		{"tcp/none", natFlow4(4, 6), StateNone, StateNone, 0},
		{"tcp/persist", natFlow4(5, 6), StatePersist, StateNone, 0},
		{"udp/unreplied", natFlow4(6, 17), StateUDPUnreplied, StateUDPUnreplied, to.UDPUnreplied},
		{"udp/one-way-is-udp", dsrFlow4(7, 17), StateUDPUnreplied, StateUDP, to.UDP},
		{"udp/tcp-state", natFlow4(8, 17), StateEstablished, StateNone, 0},
		{"udp/out-of-range", natFlow4(9, 17), numStates, StateNone, 0},
		{"persist", Flow[Key4]{Orig: key4(10, ProtoPersist), PersistTimeout: 30}, StatePersist, StatePersist, 30 * time.Second},
		{"persist/zero-timeout", Flow[Key4]{Orig: key4(11, ProtoPersist)}, StatePersist, StateNone, 0},
		{"persist/wrong-state", Flow[Key4]{Orig: key4(12, ProtoPersist), PersistTimeout: 30}, StateUDP, StateNone, 0},
		{"reply-equals-orig", Flow[Key4]{Orig: key4(13, 6), Reply: key4(13, 6), HasReply: true}, StateSynSent, StateNone, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tb := newTable[Key4](t, Config{MaxFlows: 8})
			r := tb.NewReader()
			r.Begin()
			defer r.End()
			e, err := tb.Insert(&tc.flow, tc.st, 5*sec)
			if tc.want == StateNone {
				if err != ErrInvalid || e != nil {
					t.Fatalf("got %v, %v; want ErrInvalid", e, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if e.State() != tc.want {
				t.Fatalf("state %v, want %v", e.State(), tc.want)
			}
			if want := uint32((5*time.Second + tc.ttl) / time.Second); deadlineOf(e) != want {
				t.Fatalf("deadline %d, want %d", deadlineOf(e), want)
			}
		})
	}
}

func TestTrackWritesOnlyOnChange(t *testing.T) {
	tb := newTable[Key4](t, Config{MaxFlows: 8})
	r := tb.NewReader()
	r.Begin()
	defer r.End()
	f := natFlow4(1, 6)
	e, err := tb.Insert(&f, StateEstablished, 10*sec+1) // deadline ceil(910 s + 1 ns) = 911 s
	if err != nil {
		t.Fatal(err)
	}
	w0 := e.word.Load()
	for _, at := range []Time{10*sec + 1, 10*sec + sec/2, 11*sec - 1, 11 * sec} {
		if _, ok := tb.Track(e, DirOriginal, FlagACK, at); !ok {
			t.Fatal("track failed")
		}
		if w := e.word.Load(); w != w0 {
			t.Fatalf("at %v: word changed %#x -> %#x with no state change inside the second", time.Duration(at), w0, w)
		}
	}
	// An older now (another worker's batch clock) never moves the deadline back.
	tb.Track(e, DirOriginal, FlagACK, 9*sec)
	if e.word.Load() != w0 {
		t.Fatal("deadline moved backwards")
	}
	tb.Track(e, DirOriginal, FlagACK, 11*sec+1)
	if got, want := deadlineOf(e), uint32(12+15*60); got != want {
		t.Fatalf("deadline %d, want %d", got, want)
	}
}

func TestTrackExpired(t *testing.T) {
	tb := newTable[Key4](t, Config{MaxFlows: 8, Timeouts: Timeouts{Close: 3 * time.Second}})
	r := tb.NewReader()
	r.Begin()
	defer r.End()
	f := natFlow4(1, 6)
	e, _ := tb.Insert(&f, StateClose, sec/2) // deadline ceil(3.5) = 4 s
	if st, ok := tb.Track(e, DirOriginal, 0, 4*sec-1); !ok || st != StateClose {
		t.Fatalf("just before deadline: %v %v", st, ok)
	}
	// That refresh moved the deadline to ceil(4 s - 1 ns + 3 s) = 7 s.
	if st, ok := tb.Track(e, DirOriginal, 0, 7*sec); ok || st != StateClose {
		t.Fatalf("at deadline: %v %v, want Close false", st, ok)
	}
}

func TestStrings(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{StateNone.String(), "None"},
		{StateSynSent.String(), "SynSent"},
		{StateEstablished.String(), "Established"},
		{StateUDPUnreplied.String(), "UDPUnreplied"},
		{StatePersist.String(), "Persist"},
		{State(200).String(), "State(200)"},
		{DirOriginal.String(), "Original"},
		{DirReply.String(), "Reply"},
		{Dir(3).String(), "Dir(3)"},
		{Key4{Src: [4]byte{10, 0, 0, 1}, Dst: [4]byte{192, 0, 2, 1}, SrcPort: 1234, DstPort: 80, Proto: 6}.String(), "tcp 10.0.0.1:1234 -> 192.0.2.1:80"},
		{Key6{Src: [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 1}, Dst: [16]byte{0x20, 0x01, 0x0d, 0xb8, 15: 2}, SrcPort: 5353, DstPort: 53, Proto: 17}.String(), "udp [2001:db8::1]:5353 -> [2001:db8::2]:53"},
		{Key4{Proto: ProtoPersist}.String(), "persist 0.0.0.0:0 -> 0.0.0.0:0"},
		{Key4{Proto: 47}.String(), "proto-47 0.0.0.0:0 -> 0.0.0.0:0"},
	}
	for _, tc := range tests {
		t.Run(tc.want, func(t *testing.T) {
			if tc.got != tc.want {
				t.Errorf("got %q, want %q", tc.got, tc.want)
			}
		})
	}
}
