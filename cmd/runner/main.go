// Command runner is the broker's Fargate task entrypoint: it runs the job's
// command (its own arguments) and streams the output to the run's feedback
// queue. See docs/RUNNER.md.
package main

import (
	"context"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/deploy-broker/deploy-broker/internal/runner"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, syscall.SIGINT)
	log := slog.New(slog.NewJSONHandler(os.Stderr, nil)).With("component", "runner")
	code := runner.Main(ctx, os.Args[1:], os.Environ(), os.Stdout, os.Stderr, log)
	stop()
	os.Exit(code)
}
