// Package broker is the deploy-broker target-account stack in CDK Go.
//
// One stack per target account, configured from the broker configuration
// file (internal/config) that local mode reads too. Each concern is one
// construct with a props struct and accessors, in its own file:
//
//   - TopicKey (key.go): the customer-managed KMS key of the request topic;
//     CI principals may use it only through SNS, for this topic.
//   - RequestTopic (topic.go): the broker topic; sns:Publish for the trusted
//     CI principals only, TLS only.
//   - Ledger (ledger.go): the run ledger table.
//   - Network (network.go): existing subnets and security groups, or a new
//     VPC with flow logs and a security group with no inbound rules.
//   - RunCluster (cluster.go): the ECS cluster run tasks are placed on.
//   - JobCatalogue and Job (catalogue.go, job.go): one Fargate task
//     definition and one task role per catalogue job, a shared execution role
//     and the run log group.
//   - TriggerRole (triggerrole.go): the optional GitHub Actions OIDC role.
//   - Dispatcher and DispatcherEvents (dispatcher.go, events.go): the
//     dispatcher Lambda built from cmd/dispatcher-lambda by local Go bundling
//     (bundling.go), its dead-letter queue, SNS subscription and EventBridge
//     rules.
//   - Alarms (alarms.go).
//
// NewStack (stack.go) wires them together; NewApp (app.go) reads the
// configuration, builds the app with the cdk-nag AwsSolutions checks and
// returns errors instead of panicking, so infra/main.go stays thin.
//
// The least-privilege table of docs/ARCHITECTURE.md is asserted statement by
// statement in this package's tests.
package broker
