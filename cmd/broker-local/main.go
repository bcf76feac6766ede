// Command deploy-broker-local runs the whole broker on one machine against
// the moto AWS emulator: see internal/localbroker.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"

	"github.com/deploy-broker/deploy-broker/internal/localbroker"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := localbroker.Main(ctx, os.Args[1:], os.Environ(), os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}
