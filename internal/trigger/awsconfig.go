package trigger

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/deploy-broker/deploy-broker/internal/awsclient"
	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// loadAWS builds the SDK configuration: the default chain (or --profile,
// whose role_arn/mfa_serial the SDK honours, asking for the MFA code through
// mfa), in the topic's region, then, with --role-arn, an assumed trigger
// role named after the CI run. The AWS_* variables come from getenv, not
// the process, so tests and embedders decide them.
func loadAWS(ctx context.Context, c *Config, getenv func(string) string, req *protocol.Requester, mfa func() (string, error)) (aws.Config, error) {
	// As with the AWS CLI, access keys in the environment win over an
	// ambient AWS_PROFILE (not over --profile or an environment's profile).
	staticKeys := getenv("AWS_ACCESS_KEY_ID") != "" && getenv("AWS_SECRET_ACCESS_KEY") != ""
	profile := c.Profile
	if profile == "" && !staticKeys {
		profile = getenv("AWS_PROFILE")
	}
	var extra []func(*config.LoadOptions) error
	if ep := getenv("AWS_ENDPOINT_URL"); ep != "" {
		extra = append(extra, config.WithBaseEndpoint(ep))
	}
	if f := getenv("AWS_CONFIG_FILE"); f != "" {
		extra = append(extra, config.WithSharedConfigFiles([]string{f}))
	}
	if f := getenv("AWS_SHARED_CREDENTIALS_FILE"); f != "" {
		extra = append(extra, config.WithSharedCredentialsFiles([]string{f}))
	}
	if profile == "" && staticKeys {
		extra = append(extra, config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(
			getenv("AWS_ACCESS_KEY_ID"), getenv("AWS_SECRET_ACCESS_KEY"), getenv("AWS_SESSION_TOKEN"))))
	}
	ep := firstNonEmpty(getenv("AWS_ENDPOINT_URL_STS"), getenv("AWS_ENDPOINT_URL"))
	extra = append(extra, config.WithAssumeRoleCredentialOptions(func(o *stscreds.AssumeRoleOptions) {
		o.TokenProvider = mfa
		if o.RoleSessionName == "" {
			o.RoleSessionName = sessionName(req)
		}
		// The SDK builds a profile's STS client before it resolves the
		// endpoint, and that client ignores AWS_ENDPOINT_URL: it would call
		// the real STS. Use the endpoint every other client uses.
		if c, ok := o.Client.(*sts.Client); ok && ep != "" {
			o.Client = sts.New(c.Options(), func(so *sts.Options) { so.BaseEndpoint = aws.String(ep) })
		}
	}))
	cfg, err := awsclient.Load(ctx, awsclient.Options{Region: c.Topic.Region, Profile: profile, Extra: extra})
	if err != nil {
		var nf config.SharedConfigProfileNotExistError
		if errors.As(err, &nf) {
			return aws.Config{}, fmt.Errorf("AWS profile %q does not exist in your AWS config files; check --profile, AWS_PROFILE or the environment's profile", profile)
		}
		return aws.Config{}, err
	}
	if profile != "" && cfg.Credentials != nil {
		cfg.Credentials = &profileCredentials{inner: cfg.Credentials, profile: profile, endpoint: ep}
	}
	if mfaCache := mfaCachePath(ctx, profile, getenv, ep); mfaCache != "" && cfg.Credentials != nil {
		// A profile with mfa_serial: keep its session on disk, as the AWS
		// CLI and aws-vault do, so that a dry run and the run after it ask
		// for one MFA code, not two.
		cfg.Credentials = aws.NewCredentialsCache(&fileCachedCredentials{inner: cfg.Credentials, path: mfaCache,
			warn: func(s string) { fmt.Fprintf(os.Stderr, "deploy-trigger: warning: %s\n", s) }})
	}
	if c.RoleARN != "" {
		name := c.SessionName
		if name == "" {
			name = sessionName(req)
		}
		p := stscreds.NewAssumeRoleProvider(sts.NewFromConfig(cfg), c.RoleARN, func(o *stscreds.AssumeRoleOptions) {
			o.RoleSessionName = name
			if c.ExternalID != "" {
				o.ExternalID = aws.String(c.ExternalID)
			}
		})
		cfg.Credentials = &profileCredentials{inner: aws.NewCredentialsCache(p), profile: profile, role: c.RoleARN, endpoint: ep}
	}
	return cfg, nil
}

// awsConfig is loadAWS for this invocation: its environment, and the MFA
// code asked on its terminal. A failure is a usage error (240).
func (a *app) awsConfig(ctx context.Context, cfg *Config, requester *protocol.Requester) (aws.Config, error) {
	profile := firstNonEmpty(cfg.Profile, a.getenv("AWS_PROFILE"), "default")
	awsCfg, err := loadAWS(ctx, cfg, a.getenv, requester, a.mfaPrompter(ctx, profile))
	if err != nil {
		return aws.Config{}, exitcode.New(exitcode.Usage, err)
	}
	return awsCfg, nil
}

// awsClients are the AWS clients of awsConfig (through the tests' fault
// injection, when set).
func (a *app) awsClients(ctx context.Context, cfg *Config, requester *protocol.Requester) (clients, error) {
	awsCfg, err := a.awsConfig(ctx, cfg, requester)
	if err != nil {
		return clients{}, err
	}
	c := newClients(awsCfg)
	if a.wrap != nil {
		c = a.wrap(c)
	}
	return c, nil
}

// mfaPrompter asks for an MFA code on the terminal, or explains why it
// cannot. Like the confirmation prompt, Ctrl-C (or SIGTERM, or ctx ending)
// stops it at once, without waiting for Enter, with a safety stop (248);
// once stopped, it does not ask again. Once the run is out (a.watching: the
// session expired mid-run and the code is asked again), Ctrl-C is left to
// the watch loop, which cancels the run; the cancel needs the code too, so
// the prompt keeps waiting for it, and a second Ctrl-C leaves at once.
func (a *app) mfaPrompter(ctx context.Context, profile string) func() (string, error) {
	var mu sync.Mutex
	var stop error
	return func() (string, error) {
		if !a.stdinTTY {
			return "", &mfaError{msg: fmt.Sprintf("profile %q needs an MFA code (mfa_serial), but stdin is not a terminal: run deploy-trigger on a terminal, or use credentials without MFA in CI", profile)}
		}
		mu.Lock()
		defer mu.Unlock()
		if stop != nil {
			return "", stop
		}
		fmt.Fprintf(a.stderr, "MFA code for profile %s: ", profile)
		line, stopped, err := a.readAnswer(ctx)
		if stopped != "" {
			if a.watching.Load() {
				// The run is out: not a safety stop before publishing, and
				// nothing here stopped the run.
				stop = &mfaError{msg: "no MFA code for profile " + profile + " (" + stopped + "); the run may still be going: deploy-trigger attach RUN_ID follows it", code: exitcode.Broker}
			} else {
				stop = &mfaError{msg: "no MFA code for profile " + profile + ": " + stopped, code: exitcode.Safety}
			}
			return "", stop
		}
		if err != nil && line == "" {
			return "", fmt.Errorf("reading the MFA code: %w", err)
		}
		code := strings.TrimSpace(line)
		if code == "" {
			return "", &mfaError{msg: "no MFA code was entered for profile " + profile + ": run again and type the code your MFA device shows"}
		}
		return code, nil
	}
}

// mfaError says an MFA code was needed and could not be had.
type mfaError struct {
	msg  string
	code int // the exit code: Usage unless set (Safety: the prompt was interrupted)
}

func (e *mfaError) Error() string { return e.msg }

// exit is e with its exit code.
func (e *mfaError) exit() error {
	if e.code == 0 {
		return exitcode.New(exitcode.Usage, e)
	}
	return exitcode.New(e.code, e)
}

// mfaInterrupted finds in err an MFA prompt that Ctrl-C, SIGTERM or the
// context's end stopped, or returns nil. Callers that would report a
// credential failure in their own words (and exit code) return it instead.
func mfaInterrupted(err error) *mfaError {
	var mfa *mfaError
	if errors.As(err, &mfa) && mfa.code == exitcode.Safety {
		return mfa
	}
	return nil
}
