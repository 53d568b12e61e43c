package main

import (
	"context"
	"errors"
)

// Commands still being built; each returns an honest error until it lands.
var errNotBuilt = errors.New("not built yet")

func runRelay(ctx context.Context, _ []string) error  { return errNotBuilt }
func runWorker(ctx context.Context, _ []string) error { return errNotBuilt }
func runAPI(ctx context.Context, _ []string) error    { return errNotBuilt }
func runAll(ctx context.Context, _ []string) error    { return errNotBuilt }
func runDemo(ctx context.Context, _ []string) error   { return errNotBuilt }
