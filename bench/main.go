// Command bench measures the runner end to end through deploy-trigger and
// the local broker (its moto server) and prints a table and "name: value"
// lines (see docs/BENCHMARKS.md). Run it from the repository root:
// go run ./bench [-lines N] [-skip rss]…
//
// It is the runner's end-to-end benchmark: the real
// deploy-trigger binary running a job through the local broker (its moto
// server, the real dispatcher handler, the SNS loop and the agent starting
// the real runner binary) and printing the job's output, compared with a
// bare SendMessageBatch loop on the same moto server; the runner streaming
// to a minimal in-bench receiver for comparison; latency at a slow line
// rate through deploy-trigger; and the runner's peak RSS while a job writes
// 1 GiB. Results are printed as a table and as "name: value"
// lines; docs/BENCHMARKS.md records them.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	// The same binary is the benchmark's job: bench job MODE ARGS….
	if len(os.Args) > 2 && os.Args[1] == JobArg {
		os.Exit(Job(os.Args[2], os.Args[3:]))
	}
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	code := Main(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
