package localbroker

import (
	"context"
	"fmt"
	"regexp"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/sts"

	"github.com/deploy-broker/deploy-broker/internal/config"
	"github.com/deploy-broker/deploy-broker/internal/identity"
	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Identity is the principal local mode's deploy-trigger signs as: a session,
// assumed in the emulator, of a role the configuration trusts. moto maps the
// session's credentials to that role in that role's account, so the
// dispatcher verifies it like any other proof, through local mode's
// endpoint, which checks its signature (sigcheck.go) before moto's STS
// answers (moto checks none).
type Identity struct {
	ARN   string // as STS reports it, e.g. arn:aws:sts::111111111111:assumed-role/github-deployer/local-demo
	From  string // the configuration entry it stands for
	Creds aws.Credentials
}

// localSession is the session name of the local identity.
const localSession = "deploy-broker-local"

// candidateRoles turns the configuration's principals into roles to assume
// in the emulator, with the entry each stands for: a role ARN as it is; an
// assumed-role pattern as its role, with a session name the glob matches;
// an account id or root ARN as a role named after the broker in that
// account. IAM users and other partitions are left out (moto makes users
// only in its own account; local mode runs in partition aws).
func candidateRoles(cfg *config.Config) [][3]string { // role ARN, session, entry
	var out [][3]string
	add := func(entry string) {
		parts := strings.SplitN(entry, ":", 6)
		switch {
		case regexp.MustCompile(`^\d{12}$`).MatchString(entry):
			out = append(out, [3]string{"arn:aws:iam::" + entry + ":role/" + cfg.Broker.Name + "-local", localSession, entry})
		case len(parts) != 6 || parts[1] != "aws":
		case parts[2] == "iam" && parts[5] == "root":
			out = append(out, [3]string{"arn:aws:iam::" + parts[4] + ":role/" + cfg.Broker.Name + "-local", localSession, entry})
		case parts[2] == "iam" && strings.HasPrefix(parts[5], "role/"):
			out = append(out, [3]string{entry, localSession, entry})
		case parts[2] == "sts" && strings.HasPrefix(parts[5], "assumed-role/"):
			rs := strings.Split(strings.TrimPrefix(parts[5], "assumed-role/"), "/")
			if len(rs) != 2 || strings.Contains(rs[1], "[") {
				return
			}
			session := strings.NewReplacer("*", "local", "?", "x").Replace(rs[1])
			if len(session) < 2 {
				session += "-local"
			}
			out = append(out, [3]string{"arn:aws:iam::" + parts[4] + ":role/" + rs[0], session, entry})
		}
	}
	for _, e := range cfg.TrustedPrincipals {
		add(e)
	}
	for _, name := range cfg.JobNames() {
		for _, e := range cfg.Jobs[name].AllowedPrincipals {
			add(e)
		}
	}
	return out
}

// allowedJobs counts the jobs p may run: those without allowed_principals
// when p is trusted, and those whose allowed_principals name it.
func allowedJobs(cfg *config.Config, p identity.Principal) int {
	trusted := identity.TrustedBy(p, cfg.TrustedPrincipals)
	n := 0
	for _, name := range cfg.JobNames() {
		if identity.MayRun(p, cfg.Jobs[name].AllowedPrincipals, trusted) {
			n++
		}
	}
	return n
}

// chooseIdentity assumes, in the emulator, the candidate role whose session
// may run the most jobs (the first such, in the configuration's order).
func chooseIdentity(ctx context.Context, awsCfg aws.Config, cfg *config.Config) (*Identity, error) {
	client := sts.NewFromConfig(awsCfg)
	var best *Identity
	bestN := -1
	for _, c := range candidateRoles(cfg) {
		out, err := client.AssumeRole(ctx, &sts.AssumeRoleInput{RoleArn: aws.String(c[0]), RoleSessionName: aws.String(c[1]), DurationSeconds: aws.Int32(12 * 3600)})
		if err != nil {
			return nil, fmt.Errorf("assuming %s in the emulator: %w", c[0], err)
		}
		arn := aws.ToString(out.AssumedRoleUser.Arn)
		p, err := identity.PrincipalFromARN(arn)
		if err != nil {
			continue
		}
		if n := allowedJobs(cfg, p); n > bestN {
			cr := out.Credentials
			best, bestN = &Identity{ARN: arn, From: c[2], Creds: aws.Credentials{AccessKeyID: aws.ToString(cr.AccessKeyId),
				SecretAccessKey: aws.ToString(cr.SecretAccessKey), SessionToken: aws.ToString(cr.SessionToken)}}, n
		}
		if bestN == len(cfg.Jobs) {
			break
		}
	}
	return best, nil
}

// Sign sets req's proof of identity as deploy-trigger would with Env's
// credentials: signed by Identity, for the STS endpoint deploy-trigger
// uses here (tests that publish requests by hand).
func (b *Broker) Sign(ctx context.Context, req *protocol.Request) error {
	if b.Identity == nil {
		return fmt.Errorf("local broker has no trusted identity to sign with")
	}
	return identity.RequestSigner{Credentials: credentials.StaticCredentialsProvider{Value: b.Identity.Creds},
		Topic: b.TopicARN(), Endpoint: b.shim.URL}.Sign(ctx, req)
}
