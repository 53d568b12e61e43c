// Command hookrelay delivers webhooks for Postgres-backed applications.
//
//	hookrelay migrate   apply hookrelay's and River's migrations
//	hookrelay relay     run the outbox relay
//	hookrelay worker    run delivery workers and River's scheduler
//	hookrelay api       serve the HTTP API
//	hookrelay run       all of the above in one process
//	hookrelay demo      a self-contained walkthrough
//	hookrelay bench     measure the pipeline; see BENCHMARKS.md
//	hookrelay healthcheck [url]  exit 0 when the URL answers 200 (container health checks)
//
// Configuration comes from the environment (see the README). The binary only
// wires packages together; the logic lives in them.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"syscall"
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string) error
}

func commands() []command {
	return []command{
		{"migrate", "apply hookrelay's and River's migrations (idempotent)", runMigrate},
		{"relay", "run the outbox relay", runRelay},
		{"worker", "run delivery workers and River's scheduler", runWorker},
		{"api", "serve the HTTP API", runAPI},
		{"run", "relay, worker and API in one process", runAll},
		{"demo", "self-contained walkthrough: deliver one webhook and show it", runDemo},
		{"bench", "measure the pipeline (emission, relay, delivery, latency, River baseline, memory)", runBench},
		{"healthcheck", "GET a health URL (default " + defaultHealthURL + "); exit 0 on 200", runHealthcheck},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()
	if err := dispatch(ctx, os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "hookrelay:", err)
		if errors.Is(err, errUsage) {
			os.Exit(2)
		}
		os.Exit(1)
	}
}

var errUsage = errors.New("usage")

func dispatch(ctx context.Context, args []string) error {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage()
		if len(args) == 0 {
			return errUsage
		}
		return nil
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:])
		}
	}
	usage()
	return fmt.Errorf("%w: unknown command %q", errUsage, args[0])
}

func usage() {
	fmt.Fprintln(os.Stderr, "usage: hookrelay <command>\n\ncommands:")
	for _, c := range commands() {
		fmt.Fprintf(os.Stderr, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(os.Stderr, "\nconfiguration is read from the environment; see README.md")
}

func newLogger(level slog.Level) *slog.Logger {
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
}
