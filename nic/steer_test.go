package nic

import (
	"bytes"
	"encoding/binary"
	"testing"

	"github.com/cilium/ebpf"
	"github.com/cilium/ebpf/asm"
)

// The programs' specs are checked here without privileges: they assemble,
// every jump and map reference resolves, and the maps have the layouts the
// Go side writes. What they do with frames is tested by running them in
// the kernel (steer_linux_test.go, decap_linux_test.go), which needs root.

func TestProgSpecs(t *testing.T) {
	tests := []struct {
		name     string
		spec     *ebpf.CollectionSpec
		prog     string
		maxInsns int // a budget: the programs are meant to stay small
	}{
		{"steer", steerSpec(4), steerProgName, 128},
		{"decap", decapSpec(), decapProgName, 96},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ps, ok := tt.spec.Programs[tt.prog]
			if !ok {
				t.Fatalf("no program %q in spec", tt.prog)
			}
			if ps.Type != ebpf.XDP || ps.License == "" || len(ps.Name) > 15 {
				t.Errorf("program %q: type %v, license %q, name length %d: want XDP, a license, a name of at most 15 bytes", tt.prog, ps.Type, ps.License, len(ps.Name))
			}
			insns := ps.Instructions
			n := 0
			for _, ins := range insns {
				n += int(ins.Size() / asm.InstructionSize)
			}
			t.Logf("%s: %d instructions (%d slots)", tt.prog, len(insns), n)
			if len(insns) > tt.maxInsns {
				t.Errorf("%d instructions, budget %d", len(insns), tt.maxInsns)
			}
			if last := insns[len(insns)-1]; last.OpCode.JumpOp() != asm.Exit {
				t.Errorf("last instruction is %v, want exit", last)
			}

			// Marshal resolves jumps in place: work on a copy.
			cp := append(asm.Instructions(nil), insns...)
			var buf bytes.Buffer
			var order binary.ByteOrder = binary.BigEndian
			if binary.NativeEndian.Uint16([]byte{1, 0}) == 1 {
				order = binary.LittleEndian
			}
			if err := cp.Marshal(&buf, order); err != nil {
				t.Fatalf("marshal: %v", err)
			}
			if buf.Len() != n*asm.InstructionSize {
				t.Errorf("marshalled %d bytes, want %d", buf.Len(), n*asm.InstructionSize)
			}

			// Jumps go forward only (no loops) and land inside the program.
			offsets := make([]int, len(cp))
			slot := 0
			for i, ins := range cp {
				offsets[i] = slot
				slot += int(ins.Size() / asm.InstructionSize)
			}
			for i, ins := range cp {
				if !ins.OpCode.Class().IsJump() || ins.IsFunctionCall() || ins.OpCode.JumpOp() == asm.Exit {
					continue
				}
				target := offsets[i] + 1 + int(ins.Offset)
				if ins.Offset < 0 || target >= n {
					t.Errorf("instruction %d (%v) jumps to slot %d of %d", i, ins, target, n)
				}
			}

			// Every map the program names exists, and every map is used.
			used := map[string]bool{}
			for i, ins := range insns {
				if !ins.IsLoadFromMap() {
					continue
				}
				ref := ins.Reference()
				if _, ok := tt.spec.Maps[ref]; !ok {
					t.Errorf("instruction %d loads map %q, not in the spec", i, ref)
				}
				used[ref] = true
			}
			for name, ms := range tt.spec.Maps {
				if !used[name] {
					t.Errorf("map %q is never used", name)
				}
				if len(ms.Name) > 15 {
					t.Errorf("map %q: kernel name %q longer than 15 bytes", name, ms.Name)
				}
			}
		})
	}
}

func TestSteerSpecMaps(t *testing.T) {
	spec := steerSpec(3)
	tests := []struct {
		name      string
		typ       ebpf.MapType
		keySize   uint32
		valueSize uint32
		entries   uint32
	}{
		{steerMapServices, ebpf.Hash, uint32(len(steerServiceKey{})), 1, 2 * SteerMaxServices},
		{steerMapLocals, ebpf.Hash, 4, 1, 2 * SteerMaxLocals},
		{steerMapVIPs, ebpf.Hash, 4, 1, 2 * SteerMaxVIPs},
		{steerMapXSKs, ebpf.XSKMap, 4, 4, 3},
		{steerMapStats, ebpf.PerCPUArray, 4, 8, uint32(steerCounters)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := spec.Maps[tt.name]
			if m == nil {
				t.Fatal("missing")
			}
			if m.Type != tt.typ || m.KeySize != tt.keySize || m.ValueSize != tt.valueSize || m.MaxEntries != tt.entries {
				t.Errorf("got %v key %d value %d entries %d, want %v key %d value %d entries %d",
					m.Type, m.KeySize, m.ValueSize, m.MaxEntries, tt.typ, tt.keySize, tt.valueSize, tt.entries)
			}
		})
	}
	if len(spec.Maps) != len(tests) {
		t.Errorf("spec has %d maps, want %d", len(spec.Maps), len(tests))
	}
}

func TestSteerServiceKey(t *testing.T) {
	// The program builds the key on its stack at steerKey..steerKeyPad;
	// the Go side must lay it out the same way.
	if steerKeyPort-steerKey != 4 || steerKeyProt-steerKey != 6 || steerKeyPad-steerKey != 7 {
		t.Fatalf("stack key layout %d %d %d %d does not match the map key", steerKey, steerKeyPort, steerKeyProt, steerKeyPad)
	}
	tests := []struct {
		svc  SteerService
		want steerServiceKey
	}{
		{SteerService{[4]byte{198, 18, 1, 1}, 80, 6}, steerServiceKey{198, 18, 1, 1, 0, 80, 6, 0}},
		{SteerService{[4]byte{198, 19, 255, 254}, 0x1234, 17}, steerServiceKey{198, 19, 255, 254, 0x12, 0x34, 17, 0}},
	}
	for _, tt := range tests {
		t.Run(tt.svc.String(), func(t *testing.T) {
			if got := makeSteerServiceKey(tt.svc); got != tt.want {
				t.Errorf("key % x, want % x", got, tt.want)
			}
		})
	}
}

func TestWireConstants(t *testing.T) {
	// A value the program compares with a loaded field must, stored in
	// host order, read as the field in network order.
	for _, v := range []uint16{0x0800, 0x0806, 0x1fff, 0x3fff, 0x0001} {
		var got, want [2]byte
		binary.NativeEndian.PutUint16(got[:], uint16(wire16(v)))
		binary.BigEndian.PutUint16(want[:], v)
		if got != want {
			t.Errorf("wire16(%#04x) stores as % x, want % x", v, got, want)
		}
	}
	var got, want [8]byte
	const arp = 0x0001_0800_0604_0001
	binary.NativeEndian.PutUint64(got[:], uint64(wire64(arp)))
	binary.BigEndian.PutUint64(want[:], arp)
	if got != want {
		t.Errorf("wire64 stores as % x, want % x", got, want)
	}
}

func TestSteerStrings(t *testing.T) {
	tests := []struct {
		got, want string
	}{
		{AttachAuto.String(), "auto"},
		{AttachNative.String(), "native"},
		{AttachGeneric.String(), "generic"},
		{AttachMode(9).String(), "AttachMode(9)"},
		{SteerService{[4]byte{198, 18, 1, 1}, 80, 6}.String(), "198.18.1.1:80/tcp"},
		{SteerService{[4]byte{198, 18, 1, 1}, 53, 17}.String(), "198.18.1.1:53/udp"},
		{SteerService{[4]byte{198, 18, 1, 1}, 1, 1}.String(), "198.18.1.1:1/proto-1"},
	}
	for _, tt := range tests {
		if tt.got != tt.want {
			t.Errorf("got %q, want %q", tt.got, tt.want)
		}
	}
}
