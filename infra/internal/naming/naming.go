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
