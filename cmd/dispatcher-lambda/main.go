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
	ctx := context.Background()
	d, errType, err := build(ctx, log)
	if err != nil {
		log.Error("dispatcher cannot start", "error", err.Error())
		if rerr := reportInitError(ctx, os.Getenv("AWS_LAMBDA_RUNTIME_API"), errType, err); rerr != nil {
			log.Error("could not report the start-up error to the Lambda Runtime API", "error", rerr.Error())
		}
		os.Exit(1)
	}
	lambda.Start(d.Handle)
}

// build reads the settings the stack put in the environment, loads the AWS
// configuration and builds the dispatcher. On error it also returns the
// error type to report to the Runtime API.
func build(ctx context.Context, log *slog.Logger) (*dispatcher.Dispatcher, string, error) {
	set, err := dispatcher.SettingsFromEnv(os.Getenv)
	if err != nil {
		return nil, errTypeEnvironment, err
	}
	awsCfg, err := awsclient.Load(ctx, awsclient.Options{})
	if err != nil {
		return nil, errTypeStart, err
	}
	d, err := dispatcher.Build(ctx, awsCfg, set, log)
	if err != nil {
		return nil, errTypeStart, err
	}
	return d, "", nil
}
