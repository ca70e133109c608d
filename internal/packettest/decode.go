package packettest

// Decode decodes frame the way Check does, for tests that need a field's
// value (an allocated port, say) rather than a comparison. Layers that are
// absent are nil.
func Decode(frame []byte) *Packet { return decodeFrame(frame) }
