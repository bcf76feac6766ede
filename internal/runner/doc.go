// Package runner is the runner, the entrypoint of every job's Fargate task
// (cmd/runner): it runs the job's command (its own arguments, never a shell
// string) in a session of its own, under a uid of its own when the runner is
// root (isolate.go, procattr_linux.go), with the job's deployment role
// served on a loopback credentials endpoint (creds.go), streams what the job
// prints to the run's FIFO feedback queue as protocol records (started,
// output, heartbeat, exit), and keeps a full copy on its own stdout and
// stderr, the task's log.
//
// The pipeline, one file each: config.go reads the environment the
// dispatcher set (protocol/env.go); run.go starts the job, enforces its
// deadline and grace, and ends with the exit record; reader.go reads the
// job's pipes into line pieces, masked by redact.go; batcher.go packs
// records into messages and adds the heartbeats, compressed by compose.go
// when that helps; sender.go delivers them in order with SendMessageBatch,
// retrying within its send timeout. See docs/RUNNER.md.
package runner
