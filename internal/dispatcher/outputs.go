package dispatcher

import (
	"context"
	"encoding/json"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudwatchlogs"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// The job's outputs in the ledger (issue 17). The runner cannot write the
// ledger (job roles are denied it: runner and job share the task role), the
// trigger is not trusted to report them, and the dispatcher does not read
// run queues. What the runner writes to its run log (protocol/runlog.go)
// reaches CloudWatch Logs through the awslogs driver with the execution
// role, beyond the job's reach; when ECS reports the task STOPPED, the
// dispatcher reads the end of the task's stream for the exit record and
// keeps its outputs in the ledger item (`outputs`, a JSON object by name).
// The awslogs driver sends a container's last lines when it exits, before
// the task stops; if they are not there yet, the ledger keeps no outputs
// (show still finds them in the run log).

// LogsAPI is the part of the CloudWatch Logs client the dispatcher uses.
type LogsAPI interface {
	GetLogEvents(context.Context, *cloudwatchlogs.GetLogEventsInput, ...func(*cloudwatchlogs.Options)) (*cloudwatchlogs.GetLogEventsOutput, error)
}

// runExit returns the exit record at the end of a stopped run's log, nil
// when there is none or the log cannot be read (the log is a convenience,
// never a reason to fail the task event).
func (d *Dispatcher) runExit(ctx context.Context, runID, job, taskARN string) *protocol.Exit {
	if d.logs == nil || d.set.RunLogGroup == "" || job == "" || taskARN == "" {
		return nil
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	stream := protocol.RunLogStream(job, config.ContainerName, taskARN)
	out, err := d.logs.GetLogEvents(cctx, &cloudwatchlogs.GetLogEventsInput{LogGroupName: aws.String(d.set.RunLogGroup),
		LogStreamName: aws.String(stream), StartFromHead: aws.Bool(false), Limit: aws.Int32(50)})
	if err != nil {
		d.log.Warn("cannot read the run log for the job's exit record", "run_id", runID, "stream", stream, "err", err.Error())
		return nil
	}
	for i := len(out.Events) - 1; i >= 0; i-- {
		l, ok, err := protocol.DecodeRunLogLine([]byte(aws.ToString(out.Events[i].Message)), runID)
		if err == nil && ok && l.Exit != nil {
			return l.Exit
		}
	}
	return nil
}

// outputsJSON is the outputs of an exit record as the ledger keeps them (a
// JSON object by name), "" for none.
func outputsJSON(x *protocol.Exit) string {
	if x == nil || len(x.Outputs) == 0 {
		return ""
	}
	m := make(map[string]string, len(x.Outputs))
	for _, o := range x.Outputs {
		m[o.Name] = o.Value
	}
	b, err := json.Marshal(m)
	if err != nil {
		return ""
	}
	return string(b)
}

// logExitDisagrees is the exit code the run log's exit record gives (the
// runner's word, what the trigger printed live), when it differs from the
// container exit code ECS reports; nil when they agree or either is
// missing. ECS's is the ledger's (issue 22): a job that can write into the
// run log cannot change what ECS saw the runner exit with.
func logExitDisagrees(x *protocol.Exit, ecs *int) *int {
	if x == nil || ecs == nil {
		return nil
	}
	if c := protocol.ExitCode(*x, false); c != *ecs {
		return &c
	}
	return nil
}
