// Package mototest starts a moto server for a test and tears it down after.
package mototest

import (
	"context"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"

	"github.com/deploy-broker/deploy-broker/internal/moto"
)

// Start starts a fresh moto server for t; the test fails with the install
// hint when moto_server is missing.
func Start(t testing.TB) (*moto.Server, aws.Config) {
	t.Helper()
	s, err := moto.Start(context.Background(), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	cfg, err := s.AWSConfig(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return s, cfg
}
