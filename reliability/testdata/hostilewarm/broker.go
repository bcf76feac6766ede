package main

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	"github.com/aws/aws-sdk-go-v2/service/sns"
	"github.com/aws/aws-sdk-go-v2/service/sts"
)

// brokerResources tries, with the job's own deployment session, what would
// give it the next run's assignment or another run: read and write the run
// ledger (a warm pool whose slot's inbox is a queue of the job's making),
// list the broker cluster's tasks, publish a run request. Local mode's
// ledger is "<broker>-runs" and its cluster the broker's name.
func brokerResources(broker string) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		report("ledger-read-pool", false, err.Error())
		return
	}
	db := dynamodb.NewFromConfig(cfg)
	table := aws.String(broker + "-runs")
	_, err = db.GetItem(ctx, &dynamodb.GetItemInput{TableName: table, Key: map[string]dbtypes.AttributeValue{"run_id": &dbtypes.AttributeValueMemberS{Value: "warm#hostile"}}})
	report("ledger-read-pool", err == nil, fmt.Sprint(err))
	_, err = db.PutItem(ctx, &dynamodb.PutItemInput{TableName: table, Item: map[string]dbtypes.AttributeValue{"run_id": &dbtypes.AttributeValueMemberS{Value: "planted-by-a-job"}}})
	report("ledger-write", err == nil, fmt.Sprint(err))
	_, err = ecs.NewFromConfig(cfg).ListTasks(ctx, &ecs.ListTasksInput{Cluster: aws.String(broker)})
	report("cluster-list-tasks", err == nil, fmt.Sprint(err))
	account := "123456789012"
	if who, err := sts.NewFromConfig(cfg).GetCallerIdentity(ctx, &sts.GetCallerIdentityInput{}); err == nil {
		account = aws.ToString(who.Account)
	}
	_, err = sns.NewFromConfig(cfg).Publish(ctx, &sns.PublishInput{TopicArn: aws.String("arn:aws:sns:" + cfg.Region + ":" + account + ":" + broker), Message: aws.String(`{"v":2}`)})
	report("topic-publish", err == nil, fmt.Sprint(err))
}
