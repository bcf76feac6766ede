package dispatcher

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/eventbridge"
	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/deploy-broker/deploy-broker/internal/config"
)

// Build loads and validates the catalogue named by set.ConfigPath and returns
// a dispatcher with real AWS clients. It runs once, at cold start: a bad
// catalogue fails here with a clear message instead of on every request.
func Build(ctx context.Context, awsCfg aws.Config, set Settings, log *slog.Logger, opts ...Option) (*Dispatcher, error) {
	cfg, err := config.Load(set.ConfigPath)
	if err != nil {
		return nil, err
	}
	if set.Region == "" {
		set.Region = awsCfg.Region
	}
	if set.AccountID == "" {
		id, err := sts.NewFromConfig(awsCfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{})
		if err != nil {
			return nil, fmt.Errorf("looking up the target account id: %w", err)
		}
		set.AccountID = aws.ToString(id.Account)
	}
	return New(cfg, set, Clients{
		SQS:    sqs.NewFromConfig(awsCfg),
		ECS:    ecs.NewFromConfig(awsCfg),
		Dynamo: dynamodb.NewFromConfig(awsCfg),
		Events: eventbridge.NewFromConfig(awsCfg),
		Logs:   cloudwatchlogs.NewFromConfig(awsCfg),
	}, log, opts...), nil
}
