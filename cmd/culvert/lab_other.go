//go:build !linux

package main

import (
	"context"
	"errors"
)

func labCmd(ctx context.Context, args []string) error {
	return errors.New("the namespace lab needs Linux")
}
