package broker

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
	"github.com/aws/jsii-runtime-go"
)

func TestCdkNagAwsSolutionsHasNoUnsuppressedErrors(t *testing.T) {
	for name, f := range map[string]*fixture{"broker.yaml": mainStack(t), "existing-network.yaml": otherStack(t), "warm.yaml": warmStack(t)} {
		t.Run(name, func(t *testing.T) {
			// GIVEN the stack synthesized with the AwsSolutions pack
			annotations := assertions.Annotations_FromStack(f.app.Stack.Stack)
			// WHEN we collect its errors
			errs := annotations.FindError(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*")))
			// THEN there are none
			for _, e := range *errs {
				//lint:ignore SA1019 Annotations.FindError/FindWarning return cxapi.SynthesisMessage; the type is deprecated only because its JS definition moved to @aws-cdk/cloud-assembly-api, which has no Go binding
				t.Errorf("%s: %v", *e.Id, e.Entry.Data)
			}
			// (warnings are reported, not failed)
			for _, w := range *annotations.FindWarning(jsii.String("*"), assertions.Match_StringLikeRegexp(jsii.String("AwsSolutions-.*"))) {
				//lint:ignore SA1019 Annotations.FindError/FindWarning return cxapi.SynthesisMessage; the type is deprecated only because its JS definition moved to @aws-cdk/cloud-assembly-api, which has no Go binding
				t.Logf("warning %s: %v", *w.Id, w.Entry.Data)
			}
		})
	}
}

// Every suppression says why, specifically.
func TestEveryNagSuppressionHasASpecificReason(t *testing.T) {
	f := mainStack(t)
	n := 0
	for id, r := range f.resources() {
		meta, _ := r.(map[string]interface{})["Metadata"].(map[string]interface{})
		nag, _ := meta["cdk_nag"].(map[string]interface{})
		rules, _ := nag["rules_to_suppress"].([]interface{})
		for _, raw := range rules {
			rule := raw.(map[string]interface{})
			n++
			reason, _ := rule["reason"].(string)
			if len(reason) < 40 {
				t.Errorf("%s: suppression of %v has no specific reason: %q", id, rule["id"], reason)
			}
			if rule["id"] == "AwsSolutions-IAM5" && rule["applies_to"] == nil {
				t.Errorf("%s: IAM5 suppression without applies_to hides every wildcard of the resource", id)
			}
		}
	}
	if n == 0 {
		t.Error("no suppression found: the stack has justified wildcards, expected their suppressions")
	}
}

func TestCfnLintFindsNoErrors(t *testing.T) {
	lint, err := exec.LookPath("cfn-lint")
	if err != nil {
		t.Fatal("cfn-lint is not on PATH: pip install cfn-lint")
	}
	for name, f := range map[string]*fixture{"broker.yaml": mainStack(t), "existing-network.yaml": otherStack(t), "warm.yaml": warmStack(t)} {
		t.Run(name, func(t *testing.T) {
			// GIVEN the synthesized template in a file
			path := filepath.Join(t.TempDir(), "template.json")
			b, err := os.ReadFile(filepath.Join(f.outdir, *f.app.Stack.Stack.TemplateFile()))
			if err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(path, b, 0o644); err != nil {
				t.Fatal(err)
			}
			// WHEN cfn-lint checks it
			cmd := exec.Command(lint, "--format", "parseable", path)
			out, err := cmd.CombinedOutput()
			// THEN it finds no error (exit status bit 2; warnings are bit 4
			// and informational bit 8)
			code := 0
			if ee, ok := err.(*exec.ExitError); ok {
				code = ee.ExitCode()
			} else if err != nil {
				t.Fatal(err)
			}
			if code&2 != 0 || code == 1 {
				t.Errorf("cfn-lint exit %d:\n%s", code, out)
			} else if len(strings.TrimSpace(string(out))) > 0 {
				t.Logf("cfn-lint warnings:\n%s", out)
			}
		})
	}
}
