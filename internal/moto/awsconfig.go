package moto

import (
	"context"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/smithy-go/middleware"

	"github.com/deploy-broker/deploy-broker/internal/awsclient"
)

// Region is the region local mode and the tests use.
const Region = "us-east-1"

// AccessKeyID is the dummy access key of the default credentials: shaped
// like an AWS key id, as proofs of identity require; moto maps any key it
// did not issue to its default principal, arn:aws:iam::123456789012:user/moto.
const AccessKeyID = "AKIAMOTOLOCALTEST000"

// AWSConfig returns SDK configuration for this server: loopback endpoint,
// dummy static credentials, no shared config files.
func (s *Server) AWSConfig(ctx context.Context) (aws.Config, error) {
	cfg, err := awsclient.Load(ctx, awsclient.Options{
		Region: Region,
		Extra: []func(*config.LoadOptions) error{
			config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider(AccessKeyID, "test", "")),
			config.WithAPIOptions([]func(*middleware.Stack) error{addECSFix}),
			config.WithSharedConfigFiles([]string{}),
			config.WithSharedCredentialsFiles([]string{}),
		},
	})
	if err != nil {
		return cfg, err
	}
	// Set here rather than with config.WithBaseEndpoint, which would also
	// become a config source that wins over a later change of BaseEndpoint.
	cfg.BaseEndpoint = aws.String(s.URL)
	return cfg, nil
}
