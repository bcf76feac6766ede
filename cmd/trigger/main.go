// Command deploy-trigger asks a deploy-broker to run a catalogue job in its
// target account and streams the job's output. See docs/TRIGGER.md.
package main

import (
	"context"
	"os"

	"github.com/deploy-broker/deploy-broker/internal/trigger"
)

func main() {
	os.Exit(trigger.Main(context.Background(), os.Args[1:], os.Getenv, os.Stdin, os.Stdout, os.Stderr))
}
