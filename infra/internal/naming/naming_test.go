package naming

import (
	"path"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

func TestRunQueuePatternMatchesRunQueuesOnly(t *testing.T) {
	pattern := RunQueuePattern("deploy-broker")
	for _, tc := range []struct {
		name  string
		match bool
	}{
		{protocol.QueueName("deploy-broker", "01JD3X0000000000000000000Z"), true},
		{DeadLetterQueueName("deploy-broker"), false},
		{"deploy-broker-dispatcher-dlq", false},
		{protocol.QueueName("deploy-broker-two", "01JD3X0000000000000000000Z"), false},
		{"deploy-broker-01JD3X0000000000000000000Z", false},
		{"other-01JD3X0000000000000000000Z.fifo", false},
	} {
		// IAM's ? and * behave like path.Match's on names without '/'.
		got, err := path.Match(pattern, tc.name)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.match {
			t.Errorf("pattern %s on %s = %v, want %v", pattern, tc.name, got, tc.match)
		}
	}
}

func TestParseECRImage(t *testing.T) {
	img, ok := ParseECRImage("123456789012.dkr.ecr.eu-west-1.amazonaws.com/tools/deploy-runner:1.2.3")
	if !ok || img.RepositoryARN() != "arn:aws:ecr:eu-west-1:123456789012:repository/tools/deploy-runner" {
		t.Errorf("private ECR image parsed as %+v, %v", img, ok)
	}
	img, ok = ParseECRImage("123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn/runner@sha256:" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef")
	if !ok || img.RepositoryARN() != "arn:aws-cn:ecr:cn-north-1:123456789012:repository/runner" {
		t.Errorf("China ECR image parsed as %+v, %v", img, ok)
	}
	for _, public := range []string{"public.ecr.aws/docker/library/alpine:3", "hashicorp/terraform:1.9", "ghcr.io/org/runner:1"} {
		if _, ok := ParseECRImage(public); ok {
			t.Errorf("%s taken for a private ECR image", public)
		}
	}
}
