package runner

import (
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Runner-only environment variables (the dispatcher's contract is in
// protocol/env.go). They exist for operators and for emulators; the broker
// does not set them.
const (
	// EnvRedactLocal, when true, redacts the local (CloudWatch) copy too.
	EnvRedactLocal = "DEPLOY_BROKER_REDACT_LOCAL"
	// EnvSendTimeout is how long one send may keep failing before the runner
	// gives up on the queue and goes local-only (Go duration).
	EnvSendTimeout = "DEPLOY_BROKER_SEND_TIMEOUT"
	// EnvMaxRequestBytes caps the message bodies of one SendMessageBatch
	// (and of one message); AWS allows 1 MiB.
	EnvMaxRequestBytes = "DEPLOY_BROKER_MAX_REQUEST_BYTES"
	// EnvCompress is auto (default: large bodies go gzip-compressed when
	// that is smaller) or off (every body plain JSON).
	EnvCompress = "DEPLOY_BROKER_COMPRESS"
)

// Compression modes (EnvCompress).
const (
	CompressAuto = "auto"
	CompressOff  = "off"
)

// Defaults.
const (
	DefaultHeartbeat   = 10 * time.Second
	DefaultGrace       = 10 * time.Second
	DefaultSendTimeout = 2 * time.Minute
	// DefaultMaxRequestBytes is SQS's limit for a message and for a batch.
	DefaultMaxRequestBytes = protocol.MaxMessageBytes
	minRequestBytes        = 16 * 1024
)

// Config is everything the runner needs, from its arguments and environment.
type Config struct {
	Args     []string // the job's argv
	Env      []string // the runner's environment; the job gets jobEnvironment's part of it
	RunID    string
	QueueURL string
	Job      string
	Deadline time.Time // zero: none
	// Heartbeat is the interval between heartbeat records (0: none).
	Heartbeat time.Duration
	// Grace is the time between SIGTERM and SIGKILL for the job's group.
	Grace time.Duration
	// Secrets are the values to redact (already filtered by length).
	Secrets []string
	// SecretNames are the variables that gave Secrets (for logs; never values).
	SecretNames []string
	RedactLocal bool
	SendTimeout time.Duration
	// MaxRequestBytes bounds the bodies of one request and of one message.
	MaxRequestBytes int
	// Compress is CompressAuto ("" too) or CompressOff.
	Compress string
	// JobRoleARN is the deployment role assumed for the job
	// (protocol.EnvJobRoleARN); Requester the verified requester
	// (protocol.EnvRequester), for the session's tag.
	JobRoleARN, Requester string
	// JobUID is the uid the job runs under when the runner is root
	// (EnvJobUID; 0: DefaultJobUID; -1: the runner's own, JobUIDSame).
	JobUID int
	// JobCred, when not nil, is the uid and gid the job runs under (Main
	// sets it when the runner is root).
	JobCred *syscall.Credential
	// JobCreds, when not nil, gives the job's AWS credentials: the runner
	// serves them on the job's credentials endpoint (creds.go). Nil: the
	// job gets no AWS credentials from the runner.
	JobCreds aws.CredentialsProvider
	// LogFormat is protocol.LogFormatRaw ("" too: Stdout and Stderr get the
	// job's bytes) or protocol.LogFormatRecords (Stdout gets the run log,
	// runlog.go).
	LogFormat string

	// Tuning for tests and benchmarks; zero means the default.
	MaxMessageBytes int           // bytes per message body (default MaxRequestBytes: one message per full request)
	CompressMin     int           // smallest body that is compressed (default DefaultCompressMin)
	MaxRawMessage   int           // uncompressed bytes of a compressed message (default DefaultMaxRawMessageBytes, at most 16 MiB)
	MaxPiece        int           // bytes of job output per Line (default 64 KiB)
	ReadSize        int           // bytes per pipe read (default 64 KiB)
	FlushDelay      time.Duration // how long a partial line waits for its end (default 10ms)
	QueueDepth      int           // chunks buffered between readers and batcher (default 16)
	// ExitWait is how long the runner waits for the pipes to close after the
	// job's main process exits (background children holding them) before it
	// kills the job's group; default 2s.
	ExitWait time.Duration

	// Stdout and Stderr receive the local copy of the job's output (tee).
	Stdout, Stderr io.Writer
	Log            *slog.Logger
}

// ParseConfig reads the runner's configuration from its arguments (the
// job's argv) and environment ("NAME=value" strings).
func ParseConfig(args, environ []string) (Config, error) {
	env := make(map[string]string, len(environ))
	for _, kv := range environ {
		if k, v, ok := strings.Cut(kv, "="); ok {
			env[k] = v
		}
	}
	c := Config{
		Args:            args,
		Env:             environ,
		RunID:           env[protocol.EnvRunID],
		QueueURL:        env[protocol.EnvQueueURL],
		Job:             env[protocol.EnvJob],
		JobRoleARN:      env[protocol.EnvJobRoleARN],
		Requester:       env[protocol.EnvRequester],
		Heartbeat:       DefaultHeartbeat,
		Grace:           DefaultGrace,
		SendTimeout:     DefaultSendTimeout,
		MaxRequestBytes: DefaultMaxRequestBytes,
	}
	var problems []string
	bad := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }
	if len(args) == 0 {
		bad("no job command: the job's argv is the runner's arguments (the task's container command)")
	}
	if c.RunID == "" {
		bad("%s is not set", protocol.EnvRunID)
	}
	if c.QueueURL == "" {
		bad("%s is not set", protocol.EnvQueueURL)
	}
	if v := env[protocol.EnvDeadline]; v != "" {
		t, err := time.Parse(time.RFC3339, v)
		if err != nil {
			bad("%s=%q is not an RFC 3339 time", protocol.EnvDeadline, v)
		}
		c.Deadline = t
	}
	dur := func(name string, dst *time.Duration, allowZero bool) {
		v := env[name]
		if v == "" {
			return
		}
		d, err := time.ParseDuration(v)
		if err != nil || d < 0 || (d == 0 && !allowZero) {
			bad("%s=%q is not a positive Go duration (like 10s)", name, v)
			return
		}
		*dst = d
	}
	dur(protocol.EnvHeartbeat, &c.Heartbeat, false)
	dur(protocol.EnvGrace, &c.Grace, true)
	dur(EnvSendTimeout, &c.SendTimeout, false)
	if v := env[EnvRedactLocal]; v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			bad("%s=%q is not true or false", EnvRedactLocal, v)
		}
		c.RedactLocal = b
	}
	if v := env[EnvJobUID]; v == JobUIDSame {
		c.JobUID = -1
	} else if v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 1<<31-2 {
			bad("%s=%q must be a uid other than 0, or %s", EnvJobUID, v, JobUIDSame)
		} else {
			c.JobUID = n
		}
	}
	if v := c.JobRoleARN; v != "" && !strings.HasPrefix(v, "arn:") {
		bad("%s=%q is not a role ARN", protocol.EnvJobRoleARN, v)
	}
	if v := env[EnvMaxRequestBytes]; v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < minRequestBytes || n > DefaultMaxRequestBytes {
			bad("%s=%q must be a byte count from %d to %d", EnvMaxRequestBytes, v, minRequestBytes, DefaultMaxRequestBytes)
		}
		c.MaxRequestBytes = n
	}
	switch v := env[protocol.EnvLogFormat]; v {
	case "", protocol.LogFormatRaw, protocol.LogFormatRecords:
		c.LogFormat = v
	default:
		bad("%s=%q is not %s or %s", protocol.EnvLogFormat, v, protocol.LogFormatRaw, protocol.LogFormatRecords)
	}
	switch v := env[EnvCompress]; v {
	case "", CompressAuto:
		c.Compress = CompressAuto
	case CompressOff:
		c.Compress = CompressOff
	default:
		bad("%s=%q must be %s or %s", EnvCompress, v, CompressAuto, CompressOff)
	}
	for _, name := range strings.Split(env[protocol.EnvRedact], ",") {
		name = strings.TrimSpace(name)
		if name == "" {
			continue
		}
		c.SecretNames = append(c.SecretNames, name)
		if v := env[name]; len(v) >= MinSecretLength {
			c.Secrets = append(c.Secrets, v)
		}
	}
	// The runner's own static credentials, if any, are secret too.
	for _, name := range []string{"AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"} {
		if v := env[name]; len(v) >= 16 {
			c.Secrets = append(c.Secrets, v)
		}
	}
	if len(problems) > 0 {
		return c, fmt.Errorf("runner configuration: %s", strings.Join(problems, "; "))
	}
	return c, nil
}

func (c *Config) setDefaults() {
	if c.MaxRequestBytes == 0 {
		c.MaxRequestBytes = DefaultMaxRequestBytes
	}
	if c.MaxMessageBytes == 0 || c.MaxMessageBytes > c.MaxRequestBytes {
		c.MaxMessageBytes = c.MaxRequestBytes
	}
	if c.Compress == "" {
		c.Compress = CompressAuto
	}
	if c.CompressMin == 0 {
		c.CompressMin = DefaultCompressMin
	}
	if c.MaxRawMessage == 0 {
		c.MaxRawMessage = DefaultMaxRawMessageBytes
	}
	// The receiver expands a compressed message to at most 16 MiB.
	c.MaxRawMessage = min(c.MaxRawMessage, protocol.MaxDecompressedBytes-1024)
	if c.MaxPiece == 0 {
		c.MaxPiece = 64 * 1024
	}
	// A piece, base64-encoded with its record around it, must fit in an
	// empty message.
	if most := (c.MaxMessageBytes - 1024) * 3 / 4; c.MaxPiece > most {
		c.MaxPiece = most
	}
	if c.ReadSize == 0 {
		c.ReadSize = 64 * 1024
	}
	if c.FlushDelay == 0 {
		c.FlushDelay = 10 * time.Millisecond
	}
	if c.QueueDepth == 0 {
		c.QueueDepth = 16
	}
	if c.ExitWait == 0 {
		c.ExitWait = 2 * time.Second
	}
	if c.SendTimeout == 0 {
		c.SendTimeout = DefaultSendTimeout
	}
	if c.Stdout == nil {
		c.Stdout = io.Discard
	}
	if c.Stderr == nil {
		c.Stderr = io.Discard
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
}
