// Command bench measures the runner end to end against the moto server and
// prints a table and "name: value" lines (see docs/BENCHMARKS.md). Run it
// from the repository root: go run ./cmd/bench [-lines N] [-skip rss]…
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/bench"
)

func main() {
	// The same binary is the benchmark's job and its in-process runner.
	if mode := os.Getenv(bench.EnvJob); mode != "" && os.Getenv(bench.EnvRunner) == "" {
		os.Exit(bench.Job(mode, os.Args[1:]))
	}
	if rtt := os.Getenv(bench.EnvRunner); rtt != "" {
		d, _ := time.ParseDuration(rtt)
		os.Unsetenv(bench.EnvRunner) // the job it starts must be the job
		os.Exit(bench.CountingRunner(os.Args[1:], d))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := bench.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
