// Command dispatcher-lambda is the broker's Lambda function (provided.al2023,
// built as "bootstrap"). All logic lives in internal/dispatcher.
package main

import (
	"context"
	"log/slog"
	"os"

	"github.com/aws/aws-lambda-go/lambda"

	"github.com/deploy-broker/deploy-broker/internal/awsclient"
	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stdout, nil))
	d, err := build(context.Background(), log)
	if err != nil {
		log.Error("dispatcher cannot start", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(d.Handle)
}

// build reads the settings the stack put in the environment, loads the AWS
// configuration and builds the dispatcher.
func build(ctx context.Context, log *slog.Logger) (*dispatcher.Dispatcher, error) {
	set, err := dispatcher.SettingsFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	awsCfg, err := awsclient.Load(ctx, awsclient.Options{})
	if err != nil {
		return nil, err
	}
	return dispatcher.Build(ctx, awsCfg, set, log)
}
