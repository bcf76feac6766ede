// Package localbroker runs the whole broker on one machine against the moto
// server, for the demo, for people who want to try deploy-trigger by hand and
// for the end-to-end tests. It is the local mode of docs/ARCHITECTURE.md:
//
//   - Provision creates in the emulator what the CDK stack creates in AWS:
//     the broker topic, the ECS cluster, one task definition per catalogue
//     job, the run ledger table; it finds the default VPC's subnets.
//   - The SNS loop stands in for SNS→Lambda: an SQS queue subscribed to the
//     topic, each SNS envelope fed as a Lambda SNS event to the real
//     dispatcher handler through lambda.NewHandler.
//   - The agent stands in for Fargate: it watches the cluster in the
//     emulator, starts the runner binary as a child process for each new task
//     with that task's command and environment overrides, sends SIGTERM when
//     the task is stopped, stops the task when the process exits, and
//     delivers ECS Task State Change events to the dispatcher.
//
// The dispatcher's own calls (RunTask, StopTask, CreateQueue…) are exactly
// those it makes in AWS.
package localbroker
