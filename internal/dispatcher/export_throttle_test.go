package dispatcher

import (
	"context"

	"github.com/deploy-broker/deploy-broker/internal/identity"
)

// OpenRuns is the throttle's open runs (run id → slot expiry, epoch
// seconds) of the principal with the given verified ARN.
func (d *Dispatcher) OpenRuns(ctx context.Context, principalARN string) (map[string]int64, error) {
	p, err := identity.PrincipalFromARN(principalARN)
	if err != nil {
		return nil, err
	}
	ps, err := d.ledger.GetOpenRuns(ctx, principalKey(p))
	return ps.Open, err
}
