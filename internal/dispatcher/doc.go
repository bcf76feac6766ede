// Package dispatcher is the broker's only privileged decision maker: the
// Lambda handler behind the broker topic. It is one handler for several event
// sources, routed by the event's shape:
//
//   - SNS records carrying protocol requests: run (validate against the job
//     catalogue, claim the run id in the ledger, create the run's feedback
//     queue, ecs:RunTask, write accepted or rejected), cancel (ecs:StopTask)
//     and release (delete the run's queue).
//   - EventBridge "ECS Task State Change" events for this cluster's runs,
//     forwarded to the run's queue as task records and kept in the ledger.
//   - EventBridge scheduled events: the sweep that deletes queues of runs
//     that ended long ago or were abandoned.
//
// Every decision is one structured audit line. The same code runs in Lambda
// and, through the local broker, against the emulator.
package dispatcher
