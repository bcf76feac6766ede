// Package naming derives the names and ARN patterns the broker stack grants
// on from the broker configuration. It is plain Go (no CDK), so the rules that
// decide what a policy covers are unit-tested without synthesizing anything.
package naming

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// RunQueuePattern is the IAM resource name pattern of the broker's run
// queues: "<broker>-" followed by exactly one run id's worth of characters and
// ".fifo". It is tighter than "<broker>-*": the dead-letter queue, and queues
// of another broker whose name starts with this one, never match.
func RunQueuePattern(broker string) string {
	return protocol.QueueName(broker, strings.Repeat("?", protocol.RunIDLength))
}

// DeadLetterQueueName names the dispatcher's dead-letter queue so that it can
// never be mistaken for a run queue (it does not start with "<broker>-").
func DeadLetterQueueName(broker string) string { return "dlq-" + broker + "-dispatcher" }

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

// ECRImage is an image in a private ECR repository.
type ECRImage struct {
	Account, Region, Repository string
	// Partition is "aws", "aws-cn" for amazonaws.com.cn registries.
	Partition string
}

// RepositoryARN is the ARN the execution role pulls from.
func (e ECRImage) RepositoryARN() string {
	return fmt.Sprintf("arn:%s:ecr:%s:%s:repository/%s", e.Partition, e.Region, e.Account, e.Repository)
}

var ecrImage = regexp.MustCompile(`^(\d{12})\.dkr\.ecr(?:-fips)?\.([a-z0-9-]+)\.amazonaws\.com(\.cn)?/([a-z0-9][a-z0-9._/-]*?)(?::[A-Za-z0-9_.-]+)?(?:@sha256:[a-f0-9]{64})?$`)

// ParseECRImage reports whether image is in a private ECR registry, and which
// repository. Public images (Docker Hub, public.ecr.aws, ghcr.io…) need no
// permission to pull.
func ParseECRImage(image string) (ECRImage, bool) {
	m := ecrImage.FindStringSubmatch(image)
	if m == nil {
		return ECRImage{}, false
	}
	part := "aws"
	if m[3] != "" {
		part = "aws-cn"
	}
	return ECRImage{Account: m[1], Region: m[2], Repository: m[4], Partition: part}, true
}

var sidRE = regexp.MustCompile(`^[A-Za-z0-9]*$`)

// ValidSid reports whether s can be an IAM statement id.
func ValidSid(s string) bool { return sidRE.MatchString(s) }
