package dispatcher

import (
	"fmt"
	"strings"
	"time"
)

// Environment variables of the dispatcher Lambda, set by the CDK stack.
const (
	EnvConfig          = "DEPLOY_BROKER_CONFIG"
	EnvCluster         = "DEPLOY_BROKER_CLUSTER"
	EnvLedgerTable     = "DEPLOY_BROKER_LEDGER_TABLE"
	EnvSubnets         = "DEPLOY_BROKER_SUBNETS"
	EnvSecurityGroups  = "DEPLOY_BROKER_SECURITY_GROUPS"
	EnvAssignPublicIP  = "DEPLOY_BROKER_ASSIGN_PUBLIC_IP"
	EnvExtraPrincipals = "DEPLOY_BROKER_EXTRA_PRINCIPALS"
	EnvAccountID       = "DEPLOY_BROKER_ACCOUNT_ID"
)

// Settings are the deployed resources the dispatcher works with.
type Settings struct {
	ConfigPath      string
	Cluster         string // cluster ARN (or name, locally)
	LedgerTable     string
	Subnets         []string
	SecurityGroups  []string
	AssignPublicIP  bool
	ExtraPrincipals []string // further principals that may read run queues
	AccountID       string   // the target account; looked up with STS when empty
	Region          string
	// InvocationTimeout bounds the handling of one event when the context
	// has no deadline of its own (local mode, tests); in Lambda the
	// function's timeout sets the deadline. Zero means 60 s, the stack's
	// Lambda timeout.
	InvocationTimeout time.Duration
}

// DefaultInvocationTimeout is the stack's Lambda timeout.
const DefaultInvocationTimeout = 60 * time.Second

func (s Settings) invocationTimeout() time.Duration {
	if s.InvocationTimeout > 0 {
		return s.InvocationTimeout
	}
	return DefaultInvocationTimeout
}

// SettingsFromEnv reads Settings from the Lambda environment.
func SettingsFromEnv(getenv func(string) string) (Settings, error) {
	s := Settings{
		ConfigPath:      getenv(EnvConfig),
		Cluster:         getenv(EnvCluster),
		LedgerTable:     getenv(EnvLedgerTable),
		Subnets:         splitList(getenv(EnvSubnets)),
		SecurityGroups:  splitList(getenv(EnvSecurityGroups)),
		AssignPublicIP:  getenv(EnvAssignPublicIP) == "true",
		ExtraPrincipals: splitList(getenv(EnvExtraPrincipals)),
		AccountID:       getenv(EnvAccountID),
		Region:          getenv("AWS_REGION"),
	}
	var missing []string
	for _, v := range [][2]string{{EnvConfig, s.ConfigPath}, {EnvCluster, s.Cluster}, {EnvLedgerTable, s.LedgerTable}} {
		if v[1] == "" {
			missing = append(missing, v[0])
		}
	}
	if len(s.Subnets) > 0 && len(s.SecurityGroups) == 0 {
		return s, fmt.Errorf("dispatcher environment names subnets (%s) but no security groups (%s)", EnvSubnets, EnvSecurityGroups)
	}
	if len(missing) > 0 {
		return s, fmt.Errorf("dispatcher environment is incomplete: %s not set (the CDK stack sets them)", strings.Join(missing, ", "))
	}
	return s, nil
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}
