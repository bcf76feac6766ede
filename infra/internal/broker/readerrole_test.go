package broker

import (
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-cdk-go/awscdk/v2/assertions"
)

// The run reader role (issue 17): the catalogue's viewers may assume it, and
// it may Query the ledger's history index and read the run log group:
// exactly those, nothing else.
func TestReaderRoleQueriesTheHistoryIndexAndReadsRunLogsOnly(t *testing.T) {
	for _, tc := range []struct {
		name    string
		f       func(*testing.T) *fixture
		viewers string
	}{
		{"viewers from the catalogue", otherStack, "AWS:arn:aws:iam::333333333333:role/auditor"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := tc.f(t)
			role := logicalID(f, f.app.Stack.ReaderRole.Role())
			table := logicalID(f, f.app.Stack.Ledger.Table())
			logs := logicalID(f, f.app.Stack.Catalogue.LogGroup())

			// One trust statement per viewer, each sts:AssumeRole only.
			var trusted []string
			for _, s := range trustStatements(f, role) {
				if strings.Join(s.Actions, ",") != "sts:AssumeRole" || s.Effect != "Allow" || len(s.Condition) > 0 {
					t.Errorf("reader role trust statement %v, want a plain sts:AssumeRole", s)
				}
				trusted = append(trusted, s.Principals...)
			}
			if strings.Join(trusted, ",") != tc.viewers {
				t.Errorf("reader role trusts %v, want exactly %s", trusted, tc.viewers)
			}
			assertGrants(t, "the reader role", identityStatements(f, role), []grant{
				{Sid: "QueryRunHistory", Actions: []string{"dynamodb:Query"}, Resources: []string{getAtt(table, "Arn") + "/index/history"}},
				{Sid: "ReadRunLogs", Actions: []string{"logs:GetLogEvents", "logs:FilterLogEvents"}, Resources: []string{getAtt(logs, "Arn")}},
			})
			// Nobody else may read the history index.
			for _, s := range allStatements(f) {
				for _, r := range s.Resources {
					if strings.HasSuffix(r, "/index/history") && s.LogicalID != role {
						t.Errorf("%s also grants %v on the history index", s.LogicalID, s.Actions)
					}
				}
			}
			has(t, f.template, "AWS::IAM::Role", like(obj{
				"Description":       "deploy-broker run reader: query the run history index, read run logs",
				"ManagedPolicyArns": assertions.Match_Absent(),
			}))
		})
	}
}

// Issue 22: without viewers there is no reader role. The trusted principals
// are not viewers by default: the run log holds every run's full output,
// and a CI principal may read its own runs only (the threat table).
func TestNoViewersNoReaderRole(t *testing.T) {
	f := mainStack(t)
	if f.app.Config.Viewers != nil || f.app.Stack.ReaderRole != nil {
		t.Fatalf("viewers %v, reader role %v: want neither", f.app.Config.Viewers, f.app.Stack.ReaderRole)
	}
	for _, s := range allStatements(f) {
		for _, r := range s.Resources {
			if strings.HasSuffix(r, "/index/history") {
				t.Errorf("%s grants %v on the history index without viewers", s.LogicalID, s.Actions)
			}
		}
		if s.Effect == "Allow" && slices.ContainsFunc(s.Actions, func(a string) bool { return a == "logs:FilterLogEvents" || a == "logs:*" }) {
			t.Errorf("%s may read the run log: %s", s.LogicalID, s)
		}
	}
	if _, ok := f.json["Outputs"].(map[string]interface{})["ReaderRoleArn"]; ok {
		t.Error("output ReaderRoleArn without a reader role")
	}
}
