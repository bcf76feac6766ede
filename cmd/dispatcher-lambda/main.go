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
	set, err := dispatcher.SettingsFromEnv(os.Getenv)
	if err != nil {
		log.Error("dispatcher cannot start", "error", err.Error())
		os.Exit(1)
	}
	awsCfg, err := awsclient.Load(ctx, awsclient.Options{})
	if err != nil {
		log.Error("dispatcher cannot start", "error", err.Error())
		os.Exit(1)
	}
	d, err := dispatcher.Build(ctx, awsCfg, set, log)
	if err != nil {
		log.Error("dispatcher cannot start", "error", err.Error())
		os.Exit(1)
	}
	lambda.Start(d.Handle)
}
