package runner

import (
	"context"
	"io"
	"log/slog"
	"os"

	"github.com/aws/aws-sdk-go-v2/service/sqs"

	"github.com/deploy-broker/deploy-broker/internal/awsclient"
	"github.com/deploy-broker/deploy-broker/internal/exitcode"
)

// getpid is os.Getpid (tests replace it).
var getpid = os.Getpid

// Main is the runner command: args are the job's argv, environ the runner's
// environment, stdout and stderr where the local copy of the job's output
// goes, log the runner's own diagnostics. It returns the process exit code
// (see [Result.ExitCode]; 240 for a bad configuration).
func Main(ctx context.Context, args, environ []string, stdout, stderr io.Writer, log *slog.Logger) int {
	if getpid() == 1 {
		log.Warn("the runner is PID 1 without an init: orphaned processes of the job are not reaped; " +
			"set initProcessEnabled in the task definition (the stack does) or use docker run --init")
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
	var client BatchSender
	awsCfg, err := awsclient.Load(ctx, awsclient.Options{})
	if err != nil {
		log.Error("no AWS configuration: the job runs, but its output stays in this log only", "err", err.Error())
	} else {
		client = sqs.NewFromConfig(awsCfg)
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
