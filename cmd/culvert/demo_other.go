//go:build !linux

package main

import (
	"context"
	"errors"
)

func labDemo(ctx context.Context, modes []string, conns, dgrams int) error {
	return errors.New("the namespace lab needs Linux; use --memory")
}
