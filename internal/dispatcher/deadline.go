package dispatcher

import (
	"context"
	"time"
)

// bound gives a context without a deadline (local mode, tests) the
// invocation time a Lambda would have, so that waits and leases are finite.
func (d *Dispatcher) bound(ctx context.Context) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return ctx, func() {}
	}
	return context.WithTimeout(ctx, d.set.invocationTimeout())
}

// leaseEnd is when this invocation is certainly over, on the dispatcher's
// clock, with a margin for clock differences between Lambda hosts.
func (d *Dispatcher) leaseEnd(ctx context.Context) time.Time {
	left := d.set.invocationTimeout()
	if dl, ok := ctx.Deadline(); ok {
		left = time.Until(dl)
	}
	return d.now().Add(left + leaseMargin)
}

// leaseMargin covers clock differences between the hosts of two invocations.
const leaseMargin = 5 * time.Second

// timeLeft is how long this invocation may still wait or retry, keeping
// d.reserve for the bookkeeping that follows.
func (d *Dispatcher) timeLeft(ctx context.Context) time.Duration {
	dl, ok := ctx.Deadline()
	if !ok {
		return d.set.invocationTimeout() - d.reserve
	}
	return time.Until(dl) - d.reserve
}

// pause sleeps for wait if the invocation has time for it; it reports
// whether it did.
func (d *Dispatcher) pause(ctx context.Context, wait time.Duration) bool {
	if d.timeLeft(ctx) < wait {
		return false
	}
	t := time.NewTimer(wait)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
