// Package awsclient builds aws-sdk-go-v2 configuration the same way for every
// deploy-broker binary: the SDK's default credential chain and region, the
// endpoint from AWS_ENDPOINT_URL (how local mode points every client at the
// emulator on loopback), and a retryer that backs off with jitter on
// throttling, 5xx and dropped connections.
package awsclient

import (
	"context"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/aws-sdk-go-v2/config"
)

// Options tune Load. The zero value is the SDK default chain with 8 attempts.
type Options struct {
	Region      string
	Profile     string
	MaxAttempts int           // per call, including the first; 0 means 8
	MaxBackoff  time.Duration // 0 means 5s
	// Extra options for config.LoadDefaultConfig (credential providers, MFA…).
	Extra []func(*config.LoadOptions) error
}

// Load returns an aws.Config for the given options.
func Load(ctx context.Context, o Options) (aws.Config, error) {
	attempts := o.MaxAttempts
	if attempts == 0 {
		attempts = 8
	}
	backoff := o.MaxBackoff
	if backoff == 0 {
		backoff = 5 * time.Second
	}
	opts := []func(*config.LoadOptions) error{
		config.WithRetryer(func() aws.Retryer {
			return retry.NewStandard(func(so *retry.StandardOptions) {
				so.MaxAttempts = attempts
				so.MaxBackoff = backoff
				so.Backoff = jitterBackoff{base: 100 * time.Millisecond, max: backoff}
				// The client-side rate limiter of the standard retryer gives up
				// after a burst of failures; a broker must keep retrying instead.
				so.RateLimiter = noRateLimit{}
			})
		}),
	}
	if o.Region != "" {
		opts = append(opts, config.WithRegion(o.Region))
	}
	if o.Profile != "" {
		opts = append(opts, config.WithSharedConfigProfile(o.Profile))
	}
	opts = append(opts, o.Extra...)
	cfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return aws.Config{}, fmt.Errorf("loading AWS configuration: %w", err)
	}
	if cfg.Region == "" {
		return aws.Config{}, fmt.Errorf("no AWS region: set AWS_REGION, a profile's region, or --region")
	}
	return cfg, nil
}

type noRateLimit struct{}

func (noRateLimit) GetToken(context.Context, uint) (func() error, error) {
	return func() error { return nil }, nil
}
func (noRateLimit) AddTokens(uint) error { return nil }

// jitterBackoff is "full jitter" exponential backoff: a random delay in
// [0, min(max, base·2^attempt)). The SDK's default starts at a second, far
// too slow for a runner streaming a live log; this starts at 100ms.
type jitterBackoff struct{ base, max time.Duration }

func (b jitterBackoff) BackoffDelay(attempt int, _ error) (time.Duration, error) {
	ceil := b.max
	if attempt < 30 {
		if d := b.base << uint(attempt); d > 0 && d < ceil {
			ceil = d
		}
	}
	return time.Duration(rand.Int64N(int64(ceil) + 1)), nil
}
