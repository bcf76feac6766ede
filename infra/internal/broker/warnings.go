package broker

import (
	"fmt"
	"slices"
	"strings"

	"github.com/aws/aws-cdk-go/awscdk/v2"
	"github.com/aws/jsii-runtime-go"

	"github.com/deploy-broker/deploy-broker/internal/config"
)

// PlaceholderAccounts are the account ids of this repository's examples and
// of the AWS documentation's examples. A principal in one of them does not
// exist in a real deployment, and KMS rejects a key policy that names a
// principal that does not exist: the deploy fails on the topic key.
var PlaceholderAccounts = []string{
	"000000000000", "111111111111", "111122223333", "123456789012",
	"210987654321", "222222222222", "444455556666",
}

// accountOf is the account of a principal ARN or account id, "" if none.
func accountOf(principal string) string {
	if !strings.HasPrefix(principal, "arn:") {
		return principal
	}
	parts := strings.SplitN(principal, ":", 6)
	if len(parts) < 6 {
		return ""
	}
	return parts[4]
}

// addWarnings reports, as synth warnings, what synthesizes but will not
// deploy or should not be deployed: principals in placeholder accounts, and
// job images named by a mutable tag.
func (s *Stack) addWarnings(cfg *config.Config) {
	var principals []string
	principals = append(principals, cfg.TrustedPrincipals...)
	if g := cfg.GitHubOIDC; g != nil && g.ProviderARN != "" {
		principals = append(principals, g.ProviderARN)
	}
	for _, p := range principals {
		if slices.Contains(PlaceholderAccounts, accountOf(p)) {
			awscdk.Annotations_Of(s.Stack).AddWarningV2(jsii.String("deploy-broker:placeholder-principal"), jsii.String(fmt.Sprintf(
				"principal %s is in placeholder account %s (from an example): KMS rejects a key policy naming a principal that does not exist, so the deploy would fail; name your CI principals", p, accountOf(p))))
		}
	}
	for _, j := range s.Catalogue.Jobs() {
		image := cfg.Jobs[j.Name()].Image
		if !strings.Contains(image, "@sha256:") {
			awscdk.Annotations_Of(j.TaskDefinition()).AddWarningV2(jsii.String("deploy-broker:mutable-image"), jsii.String(fmt.Sprintf(
				"job %s runs image %s by a mutable tag: whoever can push that tag changes what the job runs, with the job's role; pin it by digest (<repository>@sha256:<digest>)", j.Name(), image)))
		}
	}
}
