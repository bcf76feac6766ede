package config

import (
	"fmt"
	"regexp"
)

// A job secret (jobs.<name>.secrets) is a Secrets Manager secret or SSM
// parameter ECS injects into the job's environment. Its ARN is checked when
// the catalogue is read, so the broker, the local broker, deploy-trigger
// --catalogue and the stack's synthesis all refuse the same bad references.

// SecretKind says which service holds a job secret.
type SecretKind int

// Secret services ECS can inject from.
const (
	SecretsManager SecretKind = iota + 1
	SSMParameter
)

// Secret is a job secret reference split into what the execution role must be
// allowed to read and what ECS is given as valueFrom.
type Secret struct {
	Kind SecretKind
	// Resource is the ARN to grant read on: the secret itself for Secrets
	// Manager (without the JSON key, version stage or version id suffix),
	// the parameter for SSM.
	Resource string
	// ValueFrom is the reference exactly as configured.
	ValueFrom string
}

var (
	secretsManagerARN = regexp.MustCompile(`^(arn:aws[a-z-]*:secretsmanager:[a-z0-9-]+:\d{12}:secret:[A-Za-z0-9/_+=.@-]+)(:[^:]*(:[^:]*(:[^:]*)?)?)?$`)
	ssmParameterARN   = regexp.MustCompile(`^arn:aws[a-z-]*:ssm:[a-z0-9-]+:\d{12}:parameter/[A-Za-z0-9/_.-]+$`)
)

// ParseSecret classifies a job secret ARN.
func ParseSecret(arn string) (Secret, error) {
	if m := secretsManagerARN.FindStringSubmatch(arn); m != nil {
		return Secret{Kind: SecretsManager, Resource: m[1], ValueFrom: arn}, nil
	}
	if ssmParameterARN.MatchString(arn) {
		return Secret{Kind: SSMParameter, Resource: arn, ValueFrom: arn}, nil
	}
	return Secret{}, fmt.Errorf("%q is neither a Secrets Manager secret ARN (arn:aws:secretsmanager:REGION:ACCOUNT:secret:NAME-SUFFIX[:json-key[:version-stage[:version-id]]]) nor an SSM parameter ARN (arn:aws:ssm:REGION:ACCOUNT:parameter/NAME)", arn)
}
