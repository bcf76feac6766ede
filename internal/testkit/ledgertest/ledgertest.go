// Package ledgertest makes run ledgers for tests: a table in moto on
// loopback, created as the stack creates it, and runs taken to any status
// through the dispatcher's own writes.
package ledgertest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/dynamodb"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
	"github.com/deploy-broker/deploy-broker/internal/testkit/mototest"
)

// Table is the ledger table every helper here uses.
const Table = "ledger"

// TaskARN is the task of a run Reach started.
const TaskARN = "arn:aws:ecs:eu-west-1:111111111111:task/c/abc"

// New starts moto, creates the ledger table and returns its store, the
// DynamoDB client and the AWS configuration (for other clients on the same
// moto).
func New(t testing.TB) (*ledger.Store, *dynamodb.Client, aws.Config) {
	t.Helper()
	_, cfg := mototest.Start(t)
	db := dynamodb.NewFromConfig(cfg)
	if _, err := db.CreateTable(context.Background(), ledger.TableInput(Table)); err != nil {
		t.Fatal(err)
	}
	return ledger.New(db, Table, 24*time.Hour), db, cfg
}

// Reach claims run runID of job and takes it to status through the
// dispatcher's writes. A status added to ledger.Statuses needs a way here:
// until it has one, Reach fails, and so do the tests that drive every
// status through every reader.
func Reach(ctx context.Context, l *ledger.Store, runID, job string, status ledger.Status, now time.Time) error {
	claim := ledger.Item{RunID: runID, Status: ledger.Launching, Job: job, RequestedAt: now, CreatedAt: now,
		LeaseUntil: now.Add(time.Minute), ClaimToken: ledger.NewToken(), RequestHash: "h", RequestedBy: "arn:aws:iam::111111111111:user/u"}
	if status == ledger.Cancelled { // an early cancel's tombstone: claimed as such
		claim.Status, claim.RequestHash, claim.Reason, claim.RejectCode = ledger.Cancelled, "", "cancelled before the run request", protocol.RejectCancelled
		return l.Claim(ctx, claim)
	}
	if err := l.Claim(ctx, claim); err != nil {
		return err
	}
	var err error
	switch status {
	case ledger.Launching:
	case ledger.Queued, ledger.AwaitingApproval:
		err = l.Hold(ctx, runID, status, "{}", "https://sqs/q", now)
	case ledger.Accepted:
		_, err = l.Start(ctx, runID, TaskARN, "https://sqs/q")
	case ledger.Stopped:
		if _, err = l.Start(ctx, runID, TaskARN, "https://sqs/q"); err == nil {
			code := 0
			_, err = l.Finish(ctx, runID, ledger.End{At: now, StopCode: "EssentialContainerExited", ExitCode: &code})
		}
	case ledger.Rejected:
		err = l.Reject(ctx, runID, protocol.RejectLaunch, "could not start", time.Time{})
	case ledger.Abandoned:
		_, err = l.Abandon(ctx, runID, now)
	default:
		return fmt.Errorf("ledgertest.Reach: no way to reach status %q: add one", status)
	}
	return err
}
