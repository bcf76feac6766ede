package localbroker

import (
	"encoding/json"
	"strings"
)

// The statements that keep a job's deployment session off the broker's
// published view table in AWS, mirrored narrowly for local mode's endpoint
// (moto evaluates no IAM): the job guard's NeverTouchTheView (a Deny of
// dynamodb:* on the view table, its index and stream for the job roles)
// and, for item writes, the view table policy's OnlyTheBrokerWritesTheView
// (infra/internal/broker/view.go): a job writing a run pointer would point
// a trigger at a queue of its making; deleting or re-policing the table
// would lift the policy that says so.

// viewGuardSid and viewPolicySid name the statements the mirror refuses by.
const (
	viewGuardSid  = "broker-guard's NeverTouchTheView"
	viewPolicySid = "the view table policy's OnlyTheBrokerWritesTheView"
)

// viewWrites are the item writes OnlyTheBrokerWritesTheView denies
// (ViewItemWriteActions).
var viewWrites = map[string]bool{"PutItem": true, "UpdateItem": true, "DeleteItem": true, "BatchWriteItem": true,
	"ExecuteStatement": true, "BatchExecuteStatement": true, "ExecuteTransaction": true, "TransactWriteItems": true}

// jobViewDenied names the statements that deny a job's deployment session
// (or a session assumed from one) the DynamoDB call of body ("" when none
// does): every operation that names the view table anywhere in its request
// (TableName, a table, index or stream ARN, a batch's or transaction's
// tables, a PartiQL statement), whatever it is. It reads the whole JSON
// body, not one parameter, so no nesting hides the table; a table whose
// name merely contains the view's is refused too (prefer refusing).
func (k *keyring) jobViewDenied(key endpointKey, svc, op string, body []byte) string {
	if !key.job || svc != "dynamodb" || k.viewTable == "" {
		return ""
	}
	var doc any
	if json.Unmarshal(body, &doc) != nil || !namesTable(doc, k.viewTable) {
		return ""
	}
	if viewWrites[op] {
		return viewGuardSid + " and " + viewPolicySid
	}
	return viewGuardSid
}

// namesTable reports whether any key or string in the JSON value v
// contains table.
func namesTable(v any, table string) bool {
	return namesAny(v, func(s string) bool { return strings.Contains(s, table) })
}
