package ledger_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/ledger"
	"github.com/deploy-broker/deploy-broker/internal/testkit/ledgertest"
)

// Spare queues in the ledger (spares.go), against moto on loopback: moto
// evaluates the condition expressions, as DynamoDB does in AWS.

func TestASpareIsTakenByExactlyOneCaller(t *testing.T) {
	l, _, _ := ledgertest.New(t)
	ctx := context.Background()
	now := time.Now()
	if err := l.RecordSpare(ctx, "Q1", "key-a", now); err != nil {
		t.Fatal(err)
	}
	if err := l.OfferSpare(ctx, "key-a", "Q1", "https://sqs/b-Q1.fifo"); err != nil {
		t.Fatal(err)
	}
	if err := l.OfferSpare(ctx, "key-a", "Q2", "https://sqs/b-Q2.fifo"); !errors.Is(err, ledger.ErrConditionFailed) {
		t.Fatalf("a second offer for the same key: %v, want ErrConditionFailed (one spare per key)", err)
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	got := 0
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, url, ok, err := l.TakeSpare(ctx, "key-a")
			if err != nil {
				t.Error(err)
				return
			}
			if ok {
				if id != "Q1" || url != "https://sqs/b-Q1.fifo" {
					t.Errorf("took %q %q", id, url)
				}
				mu.Lock()
				got++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if got != 1 {
		t.Fatalf("%d of 8 concurrent takers got the spare, want 1", got)
	}
	if _, _, ok, _ := l.TakeSpare(ctx, "key-b"); ok {
		t.Fatal("another key's take got a spare")
	}
}

func TestASpareQueueIsEitherARunsOrRetired(t *testing.T) {
	l, _, _ := ledgertest.New(t)
	ctx := context.Background()
	now := time.Now()
	for _, id := range []string{"QA", "QB"} {
		if err := l.RecordSpare(ctx, id, "key", now); err != nil {
			t.Fatal(err)
		}
	}
	// Taken by a run: the sweep may not retire it, another run not claim it.
	if err := l.ClaimQueue(ctx, "QA", "RUN1", now); err != nil {
		t.Fatal(err)
	}
	if err := l.ClaimQueue(ctx, "QA", "RUN1", now); err != nil {
		t.Fatalf("claiming again for the same run: %v", err)
	}
	if err := l.ClaimQueue(ctx, "QA", "RUN2", now); !errors.Is(err, ledger.ErrConditionFailed) {
		t.Fatalf("a second run's claim: %v, want ErrConditionFailed", err)
	}
	if err := l.RetireSpare(ctx, "QA", now); !errors.Is(err, ledger.ErrConditionFailed) {
		t.Fatalf("retiring a taken queue: %v, want ErrConditionFailed", err)
	}
	if rec, ok, err := l.QueueOwner(ctx, "QA"); err != nil || !ok || rec.TakenBy != "RUN1" {
		t.Fatalf("QA's owner %+v ok %v err %v", rec, ok, err)
	}
	// Retired by the sweep: no run may claim it any more.
	if err := l.RetireSpare(ctx, "QB", now); err != nil {
		t.Fatal(err)
	}
	if err := l.ClaimQueue(ctx, "QB", "RUN3", now); !errors.Is(err, ledger.ErrConditionFailed) {
		t.Fatalf("claiming a retired queue: %v, want ErrConditionFailed", err)
	}
	// An unknown queue is nobody's.
	if err := l.ClaimQueue(ctx, "QC", "RUN3", now); !errors.Is(err, ledger.ErrConditionFailed) {
		t.Fatalf("claiming an unrecorded queue: %v, want ErrConditionFailed", err)
	}
}
