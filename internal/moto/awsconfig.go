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

// AWSConfig returns SDK configuration for this server: loopback endpoint,
// dummy static credentials, no shared config files.
func (s *Server) AWSConfig(ctx context.Context) (aws.Config, error) {
	cfg, err := awsclient.Load(ctx, awsclient.Options{
		Region: Region,
		Extra: []func(*config.LoadOptions) error{
			config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
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
