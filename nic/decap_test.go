package nic

import "testing"

func TestDecapCheckAddrs(t *testing.T) {
	tests := []struct {
		name  string
		addrs [][4]byte
		ok    bool
	}{
		{"none", nil, false},
		{"one", [][4]byte{{198, 18, 0, 1}}, true},
		{"max", make([][4]byte, DecapMaxAddrs), true},
		{"too-many", make([][4]byte, DecapMaxAddrs+1), false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := decapCheckAddrs(tt.addrs); (err == nil) != tt.ok {
				t.Errorf("decapCheckAddrs(%d addresses) = %v, want ok=%v", len(tt.addrs), err, tt.ok)
			}
		})
	}
}
