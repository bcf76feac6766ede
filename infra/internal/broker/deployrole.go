package broker

import (
	"fmt"

	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// DeploymentRolePath is the IAM path of the jobs' deployment roles:
// "/deploy-broker-job/<broker>/", outside the broker's own role path
// (config.RolePath, "/deploy-broker/<broker>/"), so that the run queues'
// policies (dispatcher.QueuePolicy, OnlyBrokerWritesOrManagesRun), which
// let only the broker's roles send, delete or change a run queue, deny the
// jobs too. A broker name holds no '/', so no broker's role path covers
// another's deployment roles.
func DeploymentRolePath(broker string) string { return "/deploy-broker-job/" + broker + "/" }

// newDeploymentRole is the job's deployment role (issue 22): exactly the
// statements and managed policies of the job's configuration, and the
// broker guard, with sending to run queues denied as well. Only the job's
// task role (the runner) may assume it, naming a source identity (the run
// id, which then marks every call of the job in CloudTrail) and tagging
// the session; the runner serves the session's credentials to the job.
func newDeploymentRole(scope constructs.Construct, props *JobProps, taskRole awsiam.Role) awsiam.Role {
	j := props.Job
	inline := map[string]awsiam.PolicyDocument{"broker-guard": jobGuard(props, true)}
	if len(j.Policy) > 0 {
		var statements []awsiam.PolicyStatement
		for _, s := range j.Policy {
			statements = append(statements, jobStatement(s))
		}
		inline["deployment"] = awsiam.NewPolicyDocument(&awsiam.PolicyDocumentProps{Statements: &statements})
	}
	var managed []awsiam.IManagedPolicy
	for i, arn := range j.ManagedPolicies {
		managed = append(managed, awsiam.ManagedPolicy_FromManagedPolicyArn(scope, jsii.String(fmt.Sprintf("Managed%d", i)), jsii.String(arn)))
	}
	// Without sts:SourceIdentity no session: every call the job makes is
	// the run's in CloudTrail.
	runner := awsiam.NewArnPrincipal(taskRole.RoleArn()).WithConditions(&map[string]interface{}{
		"Null": map[string]interface{}{"sts:SourceIdentity": "false"},
	})
	role := awsiam.NewRole(scope, jsii.String("DeploymentRole"), &awsiam.RoleProps{
		AssumedBy:       runner,
		Path:            jsii.String(DeploymentRolePath(props.Broker)),
		Description:     jsii.String(fmt.Sprintf("deploy-broker job %s: its deployment permissions, assumed by its runner for each run", props.Name)),
		InlinePolicies:  &inline,
		ManagedPolicies: &managed,
	})
	role.AssumeRolePolicy().AddStatements(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:        jsii.String("RunnerNamesTheRun"),
		Actions:    jsii.Strings("sts:SetSourceIdentity", "sts:TagSession"),
		Principals: &[]awsiam.IPrincipal{awsiam.NewArnPrincipal(taskRole.RoleArn())},
	}))
	taskRole.AddToPrincipalPolicy(awsiam.NewPolicyStatement(&awsiam.PolicyStatementProps{
		Sid:       jsii.String("AssumeTheJobsDeploymentRole"),
		Actions:   jsii.Strings("sts:AssumeRole", "sts:SetSourceIdentity", "sts:TagSession"),
		Resources: &[]*string{role.RoleArn()},
	}))
	return role
}
