package broker

import (
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awsiam"
	"github.com/aws/jsii-runtime-go"
)

// ciPrincipals turns trusted_principals (role or user ARNs, or account ids)
// into IAM principals.
func ciPrincipals(trusted []string) []awsiam.IPrincipal {
	out := make([]awsiam.IPrincipal, 0, len(trusted))
	for _, p := range trusted {
		if strings.HasPrefix(p, "arn:") {
			out = append(out, awsiam.NewArnPrincipal(jsii.String(p)))
		} else {
			out = append(out, awsiam.NewAccountPrincipal(jsii.String(p)))
		}
	}
	return out
}

// ecsTasksPrincipal is ECS tasks of this account only, for task roles: the
// confused-deputy conditions of the trust policy the "Amazon ECS task IAM
// role" page documents (aws:SourceArn of this account's ECS, and
// aws:SourceAccount). The execution role does not use them (see
// NewJobCatalogue).
func ecsTasksPrincipal() awsiam.IPrincipal {
	return awsiam.NewServicePrincipal(jsii.String("ecs-tasks.amazonaws.com"), &awsiam.ServicePrincipalOpts{
		Conditions: &map[string]interface{}{
			"StringEquals": map[string]interface{}{"aws:SourceAccount": awscdk.Aws_ACCOUNT_ID()},
			"ArnLike":      map[string]interface{}{"aws:SourceArn": arn("ecs", "*")},
		},
	})
}

// arn builds "arn:<partition>:<service>:<region>:<account>:<resource>" in the
// stack's partition, region and account.
func arn(service, resource string) *string {
	return jsii.String("arn:" + *awscdk.Aws_PARTITION() + ":" + service + ":" + *awscdk.Aws_REGION() + ":" + *awscdk.Aws_ACCOUNT_ID() + ":" + resource)
}
