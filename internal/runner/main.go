package runner

import (
	"context"
	"io"
	"log/slog"
	"os"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/service/sqs"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/deploy-broker/deploy-broker/internal/awsclient"
	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// getpid is os.Getpid and geteuid os.Geteuid (tests replace them).
var (
	getpid  = os.Getpid
	geteuid = os.Geteuid
)

// jobCredential is the uid and gid the job runs under: uid (0:
// DefaultJobUID) when the runner is root, nil (the runner's own) otherwise
// or when uid is -1 (JobUIDSame), which the log says.
func jobCredential(uid, euid int, log *slog.Logger) *syscall.Credential {
	if uid < 0 {
		log.Warn(EnvJobUID + "=" + JobUIDSame + ": the job runs under the runner's own uid")
		return nil
	}
	if euid != 0 {
		log.Warn("the runner is not root: the job runs under the runner's own uid, so it could signal the runner or read its files " +
			"(not its environment or memory: the runner is non-dumpable); run the runner as root for a job uid of its own (docs/RUNNER.md)")
		return nil
	}
	if uid == 0 {
		uid = DefaultJobUID
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(uid), Groups: []uint32{}}
}

// Main is the runner command: args are the job's argv, environ the runner's
// environment, stdout and stderr where the local copy of the job's output
// goes, log the runner's own diagnostics. It returns the process exit code
// (see [Result.ExitCode]; 240 for a bad configuration).
func Main(ctx context.Context, args, environ []string, stdout, stderr io.Writer, log *slog.Logger) int {
	if getpid() == 1 {
		log.Warn("the runner is PID 1 without an init: orphaned processes of the job are not reaped; " +
			"set initProcessEnabled in the task definition (the stack does) or use docker run --init")
	}
	if warmMode(environ) {
		var code int
		var ok bool
		if args, environ, code, ok = warmRun(ctx, environ, log); !ok { // warm.go
			return code
		}
	}
	cfg, err := ParseConfig(args, environ)
	if err != nil {
		log.Error("cannot run the job", "err", err.Error())
		return exitcode.Usage
	}
	cfg.Stdout, cfg.Stderr, cfg.Log = stdout, stderr, log
	if len(cfg.SecretNames) > 0 {
		log.Info("redacting secrets", "variables", cfg.SecretNames, "values", len(cfg.Secrets))
	}
	cfg.JobCred = jobCredential(cfg.JobUID, geteuid(), log)
	if err := hardenRunner(cfg.JobCred != nil); err != nil {
		log.Warn("cannot make the runner non-dumpable: a job under the same uid could read its memory", "err", err.Error())
	}
	var client BatchSender
	awsCfg, err := awsclient.Load(ctx, awsclient.Options{})
	if err != nil {
		log.Error("no AWS configuration: the job runs, but its output stays in this log only", "err", err.Error())
	} else {
		client = sqs.NewFromConfig(awsCfg)
	}
	switch {
	case cfg.JobRoleARN == "":
		log.Warn("no deployment role (" + protocol.EnvJobRoleARN + "): the job gets no AWS credentials")
	case err != nil:
		log.Error("no AWS configuration: the job gets no AWS credentials")
	default:
		p, perr := JobRoleProvider(sts.NewFromConfig(awsCfg), cfg.JobRoleARN, cfg.RunID, cfg.Job, cfg.Requester, DefaultCredsRefresh)
		if perr != nil {
			log.Error("the job gets no AWS credentials", "err", perr.Error())
		} else {
			cfg.JobCreds = p
			log.Info("the job's AWS credentials: the deployment role, source identity the run id", "role", cfg.JobRoleARN, "source_identity", cfg.RunID)
		}
	}
	res := Run(ctx, cfg, client)
	code := res.ExitCode()
	attrs := []any{"reason", res.Exit.Reason, "job_code", res.Exit.Code, "signal", res.Exit.Signal,
		"lines", res.Exit.Lines, "bytes", res.Exit.Bytes, "duration_ms", res.Exit.DurationMS,
		"requests", res.Requests, "messages", res.Messages, "body_bytes", res.BodyBytes,
		"raw_body_bytes", res.RawBodyBytes, "compressed_messages", res.Compressed, "retries", res.Retries,
		"exit_code", code}
	if !res.Delivered {
		msg := "the exit record could not be delivered to the feedback queue"
		if res.QueueErr != nil {
			attrs = append(attrs, "err", res.QueueErr.Error())
		}
		log.Error(msg, attrs...)
	} else {
		log.Info("run finished", attrs...)
	}
	return code
}
