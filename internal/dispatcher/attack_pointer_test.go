package dispatcher_test

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/service/dynamodb"
	dbtypes "github.com/aws/aws-sdk-go-v2/service/dynamodb/types"
	"github.com/aws/smithy-go/middleware"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
	"github.com/deploy-broker/deploy-broker/internal/dispatcher"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// pointerWrites is a DynamoDB client on moto that notes every run pointer
// the dispatcher writes (run id → queue URL), in order.
type pointerWrites struct {
	mu     sync.Mutex
	writes map[string][]string
}

func (r *pointerWrites) option() envOption {
	r.writes = map[string][]string{}
	return func(_ *dispatcher.Settings, c *dispatcher.Clients) {
		c.Dynamo = dynamodb.NewFromConfig(motoCfg, func(o *dynamodb.Options) {
			o.APIOptions = append(o.APIOptions, func(st *middleware.Stack) error {
				return st.Initialize.Add(middleware.InitializeMiddlewareFunc("notePointer",
					func(ctx context.Context, in middleware.InitializeInput, next middleware.InitializeHandler) (middleware.InitializeOutput, middleware.Metadata, error) {
						if p, ok := in.Parameters.(*dynamodb.PutItemInput); ok {
							k, _ := p.Item[brokerview.KeyAttr].(*dbtypes.AttributeValueMemberS)
							u, _ := p.Item[brokerview.QueueAttr].(*dbtypes.AttributeValueMemberS)
							if k != nil && u != nil && strings.HasPrefix(k.Value, brokerview.RunKeyPrefix) {
								r.mu.Lock()
								run := strings.TrimPrefix(k.Value, brokerview.RunKeyPrefix)
								r.writes[run] = append(r.writes[run], u.Value)
								r.mu.Unlock()
							}
						}
						return next.HandleInitialize(ctx, in)
					}), middleware.After)
			})
		})
	}
}

func (r *pointerWrites) of(run string) []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.writes[run]...)
}

// Security review of issue 26: a run's pointer must only ever name the
// run's own queue. A run that waited (concurrency, approval) already has
// its queue when it starts; starting, it takes its access's spare anyway
// and writes the pointer to that spare at the same time as it learns the
// run had a queue (useSpare runs the claim, SetQueue and the pointer write
// in parallel), then gives the spare back and points again at its own
// queue. In between, a reader of the pointer (deploy-trigger polling it,
// `attach` after a CI restart) is sent to the spare, which goes back to
// the pool and becomes the NEXT run's queue: that reader would then
// receive and delete the next run's records. Both runs are the same
// requester's (a spare is per access), so the queue policy does not stop
// it. What is proven: every PutItem of the run's pointer the dispatcher
// sends (through moto), not a reader's timing.
func TestAttackPointerOfAWaitingRunNeverNamesASpare(t *testing.T) {
	var pw pointerWrites
	e := newEnv(t, pw.option())
	e.limit(1, "queue")
	first := e.submit() // accepted; leaves a spare
	second := e.submit()
	e.wantStatus(second, ledger.Queued)
	waitedOn, _ := e.queueURL(second)
	e.d.Replenish(context.Background(), "website", e.id.ARN) // a spare appears while it waits
	var spare string
	for _, u := range e.spares() {
		spare = u
	}
	if spare == "" || spare == waitedOn {
		t.Fatalf("spare %q, waited on %q: the test needs a spare other than the run's queue", spare, waitedOn)
	}
	e.stop(first) // the second run starts
	e.wantStatus(second, ledger.Accepted)
	for i, u := range pw.of(second) {
		if u != waitedOn {
			t.Errorf("pointer write %d of the waiting run names %s (the requester's spare, handed to its next run), want only its own queue %s; all writes: %v",
				i+1, u, waitedOn, pw.of(second))
		}
	}
	if got, _ := e.queueURL(second); got != waitedOn {
		t.Errorf("final pointer %s, want %s", got, waitedOn)
	}
}
