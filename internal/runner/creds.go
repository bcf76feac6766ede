package runner

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"
	"unicode"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials/stscreds"
	ststypes "github.com/aws/aws-sdk-go-v2/service/sts/types"

	"github.com/deploy-broker/deploy-broker/internal/loopback"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// The job's AWS credentials (issue 22). The task role is the runner's
// alone; the runner assumes the job's deployment role and serves that
// role's credentials to the job on a loopback HTTP endpoint in the
// container-credentials format, which every AWS SDK and the CLI read (and
// refresh from by themselves) given AWS_CONTAINER_CREDENTIALS_FULL_URI and
// AWS_CONTAINER_AUTHORIZATION_TOKEN.
const (
	envCredsFullURI = "AWS_CONTAINER_CREDENTIALS_FULL_URI"
	envCredsToken   = "AWS_CONTAINER_AUTHORIZATION_TOKEN"

	// jobSessionDuration is one deployment-role session: an hour, the most
	// STS allows when a role session assumes a role (role chaining).
	jobSessionDuration = time.Hour
	// DefaultCredsRefresh is how long before a session ends the endpoint
	// says it ends (Expiration) and hands out a new one from then on: an
	// SDK that asks early (botocore, 15 minutes before the Expiration it
	// was given) gets a session that is still live, one that asks at the
	// Expiration (the Go SDK) a new one, and a job runs past the hour.
	DefaultCredsRefresh = 20 * time.Minute
)

// SessionTags are the deployment role session's tags: the run, the job and
// (when the dispatcher names it) the verified requester. The source
// identity, which CloudTrail records on every call the session makes and
// which no later AssumeRole can change, is the run id.
func SessionTags(runID, job, requester string) []ststypes.Tag {
	tags := []ststypes.Tag{{Key: aws.String(protocol.TagRunID), Value: aws.String(runID)}}
	if v := tagValue(job); v != "" {
		tags = append(tags, ststypes.Tag{Key: aws.String(protocol.TagJob), Value: aws.String(v)})
	}
	if v := tagValue(requester); v != "" {
		tags = append(tags, ststypes.Tag{Key: aws.String(protocol.TagRequester), Value: aws.String(v)})
	}
	return tags
}

// tagValue keeps what STS accepts in a session tag value (letters, digits,
// spaces and _.:/=+-@, at most 256 characters).
func tagValue(s string) string {
	s = strings.Map(func(r rune) rune {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || r == ' ' || strings.ContainsRune("_.:/=+-@", r) {
			return r
		}
		return '_'
	}, s)
	if r := []rune(s); len(r) > 256 {
		s = string(r[:256])
	}
	return s
}

// sourceIdentityOK says whether id is a valid sts:SourceIdentity: 2 to 64
// characters among letters, digits and _+=,.@- (the STS API reference).
// A run id (a 26-character ULID) always is.
func sourceIdentityOK(id string) bool {
	if len(id) < 2 || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c < 128 && (unicode.IsLetter(c) || unicode.IsDigit(c) || strings.ContainsRune("_+=,.@-", c))) {
			return false
		}
	}
	return true
}

// JobRoleProvider assumes roleARN for the run: session name and source
// identity the run id, session tags SessionTags, one-hour sessions, cached
// and renewed refresh before they end.
func JobRoleProvider(client stscreds.AssumeRoleAPIClient, roleARN, runID, job, requester string, refresh time.Duration) (aws.CredentialsProvider, error) {
	if !sourceIdentityOK(runID) {
		return nil, fmt.Errorf("run id %q cannot be a session name and source identity (2-64 letters, digits, _+=,.@-)", runID)
	}
	p := stscreds.NewAssumeRoleProvider(client, roleARN, func(o *stscreds.AssumeRoleOptions) {
		o.RoleSessionName = runID
		o.SourceIdentity = aws.String(runID)
		o.Tags = SessionTags(runID, job, requester)
		o.Duration = jobSessionDuration
	})
	return aws.NewCredentialsCache(p, func(o *aws.CredentialsCacheOptions) { o.ExpiryWindow = refresh }), nil
}

// credsServer is the job's credentials endpoint.
type credsServer struct {
	provider aws.CredentialsProvider
	token    string
	url      string
	srv      *http.Server
	log      *slog.Logger
}

// startCredsServer listens on a loopback port and serves provider's
// credentials to requests carrying the per-run token.
func startCredsServer(provider aws.CredentialsProvider, log *slog.Logger) (*credsServer, error) {
	tok := make([]byte, 32)
	if _, err := rand.Read(tok); err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("the job's credentials endpoint: %w", err)
	}
	s := &credsServer{provider: provider, token: hex.EncodeToString(tok), log: log,
		url: "http://" + ln.Addr().String() + "/credentials"}
	// Only the job's SDK: no web page (an Origin header), nor one that
	// reaches the port through DNS rebinding (its own name as the Host).
	s.srv = &http.Server{Handler: loopback.Guard(ln.Addr().String(), s), ReadHeaderTimeout: 10 * time.Second, MaxHeaderBytes: 8 << 10}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

// credsNoticePrefix starts the runner's line in the job's stderr when the
// job's deployment role cannot be assumed.
const credsNoticePrefix = "deploy-broker: credentials: "

// prefetch assumes the deployment role once before the job starts: the job's
// first call is not held up, and a role that cannot be assumed (a trust
// policy without the runner's role) is said in the job's own log.
func (s *credsServer) prefetch(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if _, err := s.provider.Retrieve(ctx); err != nil {
		return fmt.Errorf("cannot assume the deployment role: %w", err)
	}
	return nil
}

// env is what the job's environment gets to use the endpoint.
func (s *credsServer) env() []string {
	return []string{envCredsFullURI + "=" + s.url, envCredsToken + "=" + s.token}
}

func (s *credsServer) close() { _ = s.srv.Close() }

// containerCredentials is the container-credentials answer the SDKs read.
type containerCredentials struct {
	AccessKeyID     string `json:"AccessKeyId"`
	SecretAccessKey string `json:"SecretAccessKey"`
	Token           string `json:"Token"`
	Expiration      string `json:"Expiration"`
}

func (s *credsServer) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"code": code, "message": msg})
	}
	if r.Method != http.MethodGet || r.URL.Path != "/credentials" {
		fail(http.StatusNotFound, "NotFound", "GET /credentials only")
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), []byte(s.token)) != 1 {
		fail(http.StatusForbidden, "AccessDenied", "the Authorization header must be $"+envCredsToken)
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
	defer cancel()
	c, err := s.provider.Retrieve(ctx)
	if err != nil {
		// The reason (STS's error) goes to the runner's log; it holds no
		// secret, but the job needs only to know it may retry.
		s.log.Error("cannot assume the job's deployment role", "err", err.Error())
		var re interface{ HTTPStatusCode() int }
		status := http.StatusServiceUnavailable
		if errors.As(err, &re) && re.HTTPStatusCode() == http.StatusForbidden {
			status = http.StatusForbidden
		}
		fail(status, "AssumeRoleFailed", "the runner could not assume the job's deployment role (see the runner's log)")
		return
	}
	// The cache has moved Expires refresh earlier than the session's end:
	// the job's SDK asks again by then, and gets a new session.
	body := containerCredentials{AccessKeyID: c.AccessKeyID, SecretAccessKey: c.SecretAccessKey, Token: c.SessionToken}
	if c.CanExpire {
		body.Expiration = c.Expires.UTC().Format(time.RFC3339)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(body)
}
