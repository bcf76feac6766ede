package broker

import (
	"github.com/aws/aws-cdk-go/awscdk/v2/awsecs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"
)

// RunClusterProps configures the ECS cluster.
type RunClusterProps struct {
	// ClusterName is the cluster's name (the broker name); IAM conditions and
	// task ARNs are built from it.
	ClusterName string
}

// RunCluster is the ECS cluster run tasks are placed on.
type RunCluster interface {
	constructs.Construct
	ClusterArn() *string
	ClusterName() string
}

type runCluster struct {
	constructs.Construct
	cluster awsecs.CfnCluster
	name    string
}

// NewRunCluster creates a Fargate cluster with Container Insights. It is the
// L1 resource on purpose: the L2 Cluster creates a VPC of its own when given
// none, and Fargate tasks need no VPC on the cluster.
func NewRunCluster(scope constructs.Construct, id string, props *RunClusterProps) RunCluster {
	this := constructs.NewConstruct(scope, &id)
	cluster := awsecs.NewCfnCluster(this, jsii.String("Cluster"), &awsecs.CfnClusterProps{
		ClusterName:       jsii.String(props.ClusterName),
		CapacityProviders: &[]interface{}{jsii.String("FARGATE")},
		ClusterSettings: &[]interface{}{
			&awsecs.CfnCluster_ClusterSettingsProperty{Name: jsii.String("containerInsights"), Value: jsii.String("enabled")},
		},
	})
	return &runCluster{Construct: this, cluster: cluster, name: props.ClusterName}
}

func (c *runCluster) ClusterArn() *string { return c.cluster.AttrArn() }
func (c *runCluster) ClusterName() string { return c.name }
