package dispatcher

import (
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Settings are the deployed resources the dispatcher works with.
type Settings struct {
	ConfigPath      string
	Cluster         string // cluster ARN (or name, locally)
	LedgerTable     string
	RunLogGroup     string // outputs.go; "": the ledger keeps no outputs
	Subnets         []string
	SecurityGroups  []string
	AssignPublicIP  bool
	ExtraPrincipals []string // further trusted principals (the stack's own trigger role)
	// DispatcherRole is the dispatcher role's ARN: the only principal a
	// warm runner's inbox lets write to it (inbox.go). Empty: the broker's
	// own roles.
	DispatcherRole string
	AccountID      string // the target account; looked up with STS when empty
	Region         string
	// TaskDefinitions pins each job to the task definition revision it runs:
	// a revision ARN, "<family>:<revision>", or a bare revision number of the
	// job's family (what protocol.EnvTaskRevisions carries). A job without
	// one is never launched: RunTask by family would run whatever revision
	// was registered last.
	TaskDefinitions map[string]string
	// InvocationTimeout bounds the handling of one event when the context
	// has no deadline of its own (local mode, tests); in Lambda the
	// function's timeout sets the deadline. Zero means 60 s, the stack's
	// Lambda timeout.
	InvocationTimeout time.Duration
	// STSEndpoint replaces the STS endpoint allowlist for proofs of identity
	// (local mode, tests); empty in AWS.
	STSEndpoint string
	// STSTransport carries the verifier's STS calls (tests); nil is the default.
	STSTransport http.RoundTripper
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
		ConfigPath:      getenv(protocol.EnvConfig),
		Cluster:         getenv(protocol.EnvCluster),
		LedgerTable:     getenv(protocol.EnvLedgerTable),
		RunLogGroup:     getenv(protocol.EnvRunLogGroup),
		Subnets:         splitList(getenv(protocol.EnvSubnets)),
		SecurityGroups:  splitList(getenv(protocol.EnvSecurityGroups)),
		AssignPublicIP:  getenv(protocol.EnvAssignPublicIP) == "true",
		ExtraPrincipals: splitList(getenv(protocol.EnvExtraPrincipals)),
		AccountID:       getenv(protocol.EnvAccountID),
		Region:          getenv("AWS_REGION"),
		STSEndpoint:     getenv(protocol.EnvSTSEndpoint),
		DispatcherRole:  getenv(protocol.EnvDispatcherRole),
	}
	revs, err := parseTaskRevisions(getenv(protocol.EnvTaskRevisions))
	if err != nil {
		return s, err
	}
	s.TaskDefinitions = revs
	var missing []string
	for _, v := range [][2]string{{protocol.EnvConfig, s.ConfigPath}, {protocol.EnvCluster, s.Cluster}, {protocol.EnvLedgerTable, s.LedgerTable}} {
		if v[1] == "" {
			missing = append(missing, v[0])
		}
	}
	if len(s.Subnets) > 0 && len(s.SecurityGroups) == 0 {
		return s, fmt.Errorf("dispatcher environment names subnets (%s) but no security groups (%s)", protocol.EnvSubnets, protocol.EnvSecurityGroups)
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

// parseTaskRevisions reads protocol.EnvTaskRevisions: "<job>=<revision>,…".
func parseTaskRevisions(v string) (map[string]string, error) {
	out := map[string]string{}
	for _, p := range splitList(v) {
		job, rev, ok := strings.Cut(p, "=")
		if !ok || job == "" || rev == "" || strings.Trim(rev, "0123456789") != "" {
			return nil, fmt.Errorf("dispatcher environment %s: %q is not <job>=<revision>", protocol.EnvTaskRevisions, p)
		}
		out[job] = rev
	}
	return out, nil
}
