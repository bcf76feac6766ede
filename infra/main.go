// Command infra is the deploy-broker target-account stack as a CDK app. Run
// it through the CDK CLI from this directory:
//
//	npx cdk synth -c config=path/to/broker.yaml
//
// See docs/INFRA.md.
package main

import (
	"fmt"
	"os"

	"github.com/aws/jsii-runtime-go"

	"github.com/deploy-broker/deploy-broker/infra/internal/broker"
)

func main() { os.Exit(run()) }

func run() int {
	defer jsii.Close()
	app, err := broker.NewApp(broker.Options{})
	if err != nil {
		fmt.Fprintln(os.Stderr, "deploy-broker infra:", err)
		return 1
	}
	app.Synth(nil)
	return 0
}
