//go:build !linux

package suite

import (
	"context"
	"errors"
)

// Run needs Linux (namespaces, XDP, AF_XDP).
func Run(ctx context.Context, opt Options) (*Report, error) {
	return nil, errors.New("bench: needs Linux")
}
