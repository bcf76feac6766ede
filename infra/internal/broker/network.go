package broker

import (
	"github.com/aws/aws-cdk-go/awscdk/v2/awsec2"
	"github.com/aws/aws-cdk-go/awscdk/v2/awslogs"
	"github.com/aws/constructs-go/constructs/v10"
	"github.com/aws/jsii-runtime-go"

	"github.com/deploy-broker/deploy-broker/internal/config"
)

// NetworkProps configures where run tasks are placed.
type NetworkProps struct {
	// Network is the configuration's network section. With subnets, they and
	// the security groups are used as they are; without, a VPC is created.
	Network config.Network
	// LogRetention applies to the new VPC's flow log group.
	LogRetention awslogs.RetentionDays
}

// Network is where the dispatcher places run tasks (RunTask's awsvpc
// configuration).
type Network interface {
	constructs.Construct
	SubnetIDs() []*string
	SecurityGroupIDs() []*string
	AssignPublicIP() bool
}

type network struct {
	constructs.Construct
	subnets, groups []*string
	public          bool
}

// NewNetwork uses the configured subnets and security groups, or creates a
// VPC over two availability zones with private subnets behind one NAT
// gateway, flow logs of all traffic, and a security group with no inbound
// rules. Tasks in the new VPC get no public IP.
func NewNetwork(scope constructs.Construct, id string, props *NetworkProps) Network {
	this := constructs.NewConstruct(scope, &id)
	n := props.Network
	if len(n.Subnets) > 0 {
		return &network{Construct: this, subnets: *jsii.Strings(n.Subnets...), groups: *jsii.Strings(n.SecurityGroups...), public: n.AssignPublicIP}
	}
	flowLogs := awslogs.NewLogGroup(this, jsii.String("FlowLogs"), &awslogs.LogGroupProps{Retention: props.LogRetention})
	vpc := awsec2.NewVpc(this, jsii.String("Vpc"), &awsec2.VpcProps{
		MaxAzs:      jsii.Number(2),
		NatGateways: jsii.Number(1),
		SubnetConfiguration: &[]*awsec2.SubnetConfiguration{
			{Name: jsii.String("public"), SubnetType: awsec2.SubnetType_PUBLIC, CidrMask: jsii.Number(24)},
			{Name: jsii.String("tasks"), SubnetType: awsec2.SubnetType_PRIVATE_WITH_EGRESS, CidrMask: jsii.Number(22)},
		},
		// Nothing uses the default security group. Restricting it would add a
		// custom-resource Lambda to the stack; run tasks use Tasks below.
		RestrictDefaultSecurityGroup: jsii.Bool(false),
		FlowLogs: &map[string]*awsec2.FlowLogOptions{
			"all": {
				Destination: awsec2.FlowLogDestination_ToCloudWatchLogs(flowLogs, nil),
				TrafficType: awsec2.FlowLogTrafficType_ALL,
			},
		},
	})
	sg := awsec2.NewSecurityGroup(this, jsii.String("Tasks"), &awsec2.SecurityGroupProps{
		Vpc:              vpc,
		Description:      jsii.String("deploy-broker run tasks: no inbound rules, outbound for AWS APIs, registries and the targets of the jobs"),
		AllowAllOutbound: jsii.Bool(true),
	})
	var subnets []*string
	for _, s := range *vpc.PrivateSubnets() {
		subnets = append(subnets, s.SubnetId())
	}
	return &network{Construct: this, subnets: subnets, groups: []*string{sg.SecurityGroupId()}}
}

func (n *network) SubnetIDs() []*string        { return n.subnets }
func (n *network) SecurityGroupIDs() []*string { return n.groups }
func (n *network) AssignPublicIP() bool        { return n.public }
