// Package trigger is deploy-trigger: the command CI systems and people run to
// ask a deploy-broker for a catalogue job and watch it run.
//
// It parses flags, environment variables and an optional environments file
// into one [Config]; builds AWS credentials the SDK way (default chain,
// profiles with role_arn and mfa_serial, or an explicit trigger role);
// publishes a run request to the broker topic; tails the run's FIFO feedback
// queue, putting records back in order and dropping duplicates; prints the
// job's output in the chosen mode (plain, terminal, GitHub Actions, JSON);
// and ends with the job's exit code or one of the broker's reserved codes
// (package exitcode). Signals are handled here because Ctrl-C has two
// meanings: the first cancels the run, the second leaves at once.
//
// Everything comes in through [Run]'s parameters (arguments, environment,
// standard streams, signals), so tests drive it end to end with buffers.
package trigger
