package conntrack

import "unsafe"

// keyBytes exposes a key's memory so a test can dirty its padding.
func keyBytes(k *Key4) unsafe.Pointer { return unsafe.Pointer(k) }
