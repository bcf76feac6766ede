package broker

import (
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/brokerview"
)

// Issue 25: the broker publishes its view (internal/brokerview) in a table
// named after the broker, which deploy-trigger finds from the topic. The
// view's readers — the trusted principals, the viewers, the GitHub trigger
// role and the reader role — may dynamodb:GetItem its one key, nothing else; the writer
// (a custom resource) may PutItem that key only; nobody else is granted the
// table, and every job role is denied it (NeverTouchTheView). The item the writer puts is the view Build makes, with the stack's
// ledger table, run log group and reader role.
func TestPublishedViewAndItsGrant(t *testing.T) {
	f := otherStack(t)
	cfg := f.app.Config
	table := logicalID(f, f.app.Stack.View.Table())
	name := brokerview.TableName(cfg.Broker.Name)
	has(t, f.template, "AWS::DynamoDB::Table", like(obj{"TableName": name, "KeySchema": arr{obj{"AttributeName": brokerview.KeyAttr, "KeyType": "HASH"}},
		"TimeToLiveSpecification": obj{"AttributeName": brokerview.TTLAttr, "Enabled": true}}))
	tableArn := "arn:${AWS::Partition}:dynamodb:${AWS::Region}:${AWS::AccountId}:table/" + name
	onlyTheView := map[string]interface{}{"ForAllValues:StringEquals": map[string]interface{}{"dynamodb:LeadingKeys": []interface{}{brokerview.KeyValue}}}
	onlyPointers := map[string]interface{}{"ForAllValues:StringLike": map[string]interface{}{"dynamodb:LeadingKeys": []interface{}{brokerview.RunKeyPattern}}}
	dispatcher := logicalID(f, f.app.Stack.Dispatcher.Role())
	writerRole := logicalID(f, f.app.Stack.View.WriterRole())

	// The resource policy: GetItem of the view's key for the readers
	// exactly, GetItem of run pointers (issue 26) for who requests runs,
	// and every item write denied to all but the broker's roles and the
	// view's writer; the dispatcher's own policy: PutItem of run pointers.
	var readers, pointerReaders []string
	denied := false
	for _, s := range allStatements(f) {
		for _, r := range append(s.Resources, s.NotResources...) {
			if !strings.Contains(r, name) && !strings.Contains(r, "${"+table+".Arn}") {
				continue
			}
			switch {
			case s.LogicalID == table && s.Sid == viewReadersSid:
				if strings.Join(s.Actions, ",") != "dynamodb:GetItem" || r != tableArn || render(s.Condition) != render(onlyTheView) || s.Effect != "Allow" {
					t.Errorf("view readers' statement: %+v, want GetItem of %s under %v", s, tableArn, onlyTheView)
				}
				readers = s.Principals
			case s.LogicalID == table && s.Sid == pointerReadersSid:
				if strings.Join(s.Actions, ",") != "dynamodb:GetItem" || r != tableArn || render(s.Condition) != render(onlyPointers) || s.Effect != "Allow" {
					t.Errorf("run pointer readers' statement: %+v, want GetItem of %s under %v", s, tableArn, onlyPointers)
				}
				pointerReaders = s.Principals
			case s.LogicalID == table && s.Sid == viewWritersSid:
				cond := render(s.Condition)
				if s.Effect != "Deny" || strings.Join(s.Actions, ",") != strings.Join(ViewItemWriteActions, ",") || strings.Join(s.Principals, ",") != "AWS:*" ||
					!strings.Contains(cond, "ArnNotLike") || !strings.Contains(cond, "/deploy-broker/"+cfg.Broker.Name+"/*") || !strings.Contains(cond, writerRole) {
					t.Errorf("the Deny of writes: %+v, want every item write denied to all but the broker's roles and the writer", s)
				}
				denied = true
			case s.Sid == "WriteTheView":
				if strings.Join(s.Actions, ",") != "dynamodb:PutItem" || r != "${"+table+".Arn}" || render(s.Condition) != render(onlyTheView) {
					t.Errorf("view writer's statement: %+v", s)
				}
			case s.LogicalID == dispatcher+"DefaultPolicy" || strings.HasPrefix(s.LogicalID, dispatcher) && s.Sid == "WriteRunPointers":
				if strings.Join(s.Actions, ",") != "dynamodb:PutItem" || r != "${"+table+".Arn}" || render(s.Condition) != render(onlyPointers) || s.Effect != "Allow" {
					t.Errorf("the dispatcher's run pointer statement: %+v, want PutItem of run pointers only", s)
				}
			case s.Sid == "NeverTouchTheView":
				// Security review F3: every job role's broker guard denies
				// it the table, its policy included (trust_test.go checks
				// that each job role has it).
				if s.Effect != "Deny" || strings.Join(s.Actions, ",") != "dynamodb:*" || r != tableArn && r != tableArn+"/*" {
					t.Errorf("%s's NeverTouchTheView: %+v, want a Deny of dynamodb:* on %s and its /*", s.LogicalID, s, tableArn)
				}
			default:
				t.Errorf("%s (%s %s) also grants %v on the view table", s.LogicalID, s.Doc, s.Sid, s.Actions)
			}
		}
	}
	if !denied {
		t.Error("the view table's policy does not deny writes to all but the broker")
	}
	trigger := logicalID(f, f.app.Stack.TriggerRole.Role())
	readerRole := logicalID(f, f.app.Stack.ReaderRole.Role())
	want := []string{"AWS:arn:aws:iam::111111111111:role/ci", "AWS:arn:aws:iam::333333333333:role/auditor", "AWS:${" + trigger + ".Arn}", "AWS:${" + readerRole + ".Arn}"}
	slices.Sort(readers)
	slices.Sort(want)
	if !slices.Equal(readers, want) {
		t.Errorf("the view's readers are %v, want %v (trusted principals, viewers, the GitHub trigger role, the reader role)", readers, want)
	}
	wantPointers := []string{"AWS:arn:aws:iam::111111111111:role/ci", "AWS:${" + trigger + ".Arn}"}
	slices.Sort(pointerReaders)
	slices.Sort(wantPointers)
	if !slices.Equal(pointerReaders, wantPointers) {
		t.Errorf("the run pointers' readers are %v, want %v (trusted principals and the GitHub trigger role)", pointerReaders, wantPointers)
	}

	// The item: the writer's PutItem, rendered, holds a view that decodes.
	var create string
	for _, r := range f.resources() {
		m := r.(map[string]interface{})
		if m["Type"] == "Custom::AWS" {
			props := m["Properties"].(map[string]interface{})
			create = render(props["Create"])
			if render(props["Update"]) != create {
				t.Error("the writer's Update is not its Create: a changed configuration would not be published")
			}
		}
	}
	var call struct {
		Action     string `json:"action"`
		Parameters struct {
			TableName string                       `json:"TableName"`
			Item      map[string]map[string]string `json:"Item"`
		} `json:"parameters"`
	}
	if err := json.Unmarshal([]byte(create), &call); err != nil {
		t.Fatalf("the writer's call %q: %v", create, err)
	}
	if call.Action != "PutItem" || call.Parameters.TableName != ref(table) || call.Parameters.Item[brokerview.KeyAttr]["S"] != brokerview.KeyValue {
		t.Errorf("the writer's call: %+v", call)
	}
	// Tokens as the template names them: ${Id} and ${Id.Arn}.
	doc := call.Parameters.Item[brokerview.DocAttr]["S"]
	doc = regexp.MustCompile(`\$\{([A-Za-z0-9]+)\.Arn\}`).ReplaceAllString(doc, "arn:aws:iam::123456789012:role/$1")
	doc = regexp.MustCompile(`\$\{([A-Za-z0-9]+)\}`).ReplaceAllString(doc, "$1")
	v, err := brokerview.Decode([]byte(doc))
	if err != nil {
		t.Fatalf("the published view does not decode: %v\n%s", err, doc)
	}
	ledger := logicalID(f, f.app.Stack.Ledger.Table())
	logs := logicalID(f, f.app.Stack.Catalogue.LogGroup())
	reader := logicalID(f, f.app.Stack.ReaderRole.Role())
	if v.LedgerTable != ledger || v.RunLogGroup != logs || v.ReaderRoleARN != "arn:aws:iam::123456789012:role/"+reader {
		t.Errorf("the view names ledger %q, log group %q, reader role %q; want %s, %s, %s", v.LedgerTable, v.RunLogGroup, v.ReaderRoleARN, ledger, logs, reader)
	}
	if !slices.Equal(v.JobNames(), cfg.JobNames()) || !slices.Contains(v.TrustedPrincipals, "arn:aws:iam::123456789012:role/"+trigger) {
		t.Errorf("the view's jobs %v (want %v), trusted %v", v.JobNames(), cfg.JobNames(), v.TrustedPrincipals)
	}
	for _, j := range cfg.Jobs {
		for _, arg := range j.Command[:1] {
			if strings.Contains(create, arg) {
				t.Errorf("the published view gives away the command %q", arg)
			}
		}
		if strings.Contains(create, j.Image) {
			t.Errorf("the published view gives away the image %q", j.Image)
		}
	}
}
