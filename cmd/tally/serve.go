package main

import (
	"context"
	"errors"
	"io"
)

var errNotWired = errors.New("not available in this build")

func serveCmd(ctx context.Context, args []string, stderr io.Writer) error   { return errNotWired }
func migrateCmd(ctx context.Context, args []string, stderr io.Writer) error { return errNotWired }
func importCmd(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	return errNotWired
}
func snippetCmd(args []string, stdout, stderr io.Writer) error { return errNotWired }
