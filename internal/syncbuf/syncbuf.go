// Package syncbuf is a bytes.Buffer safe for concurrent use: a child
// process's output or a logger's, written by other goroutines and read by
// anyone. The bench peers keep their children's output in one, and tests
// (internal/testenv.Buffer) their daemons' logs.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer is the concurrent-safe buffer. The zero value is an empty buffer.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *Buffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

// String returns what was written so far.
func (s *Buffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// Bytes returns a copy of what was written so far.
func (s *Buffer) Bytes() []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.b.Bytes())
}
