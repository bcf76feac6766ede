// Command bench measures the runner end to end through deploy-trigger and
// the local broker (its moto server) and prints a table and "name: value"
// lines (see docs/BENCHMARKS.md). Run it from the repository root:
// go run ./cmd/bench [-lines N] [-skip rss]…
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/deploy-broker/deploy-broker/internal/bench"
)

func main() {
	// The same binary is the benchmark's job: bench job MODE ARGS….
	if len(os.Args) > 2 && os.Args[1] == bench.JobArg {
		os.Exit(bench.Job(os.Args[2], os.Args[3:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := bench.Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
