package localbroker

import (
	"encoding/json"
	"net/url"
	"strings"
)

// The job guard's Denies on the broker's ledger, cluster and run log,
// mirrored narrowly for local mode's endpoint (moto evaluates no IAM):
// broker-guard's NeverTouchTheRunLedger (every DynamoDB action on the run
// ledger: a job rewriting a warm pool's slot would have the next run's
// assignment, secrets included, sent to a queue of its making),
// NeverControlTheBrokerCluster and NeverControlTasksOnTheBrokerCluster
// (every ECS action on the broker cluster and its tasks: a task started
// there is run by local mode's agent as a runner, with a runner's key),
// NeverTouchTheRunLog (every CloudWatch Logs action on the run log group,
// which show, attach and the ledger's outputs read) and
// NeverPublishToTheBroker (a job's signed run request)
// (infra/internal/broker/jobguard.go). Like the view's mirror it refuses a
// job's session any call that names the resource anywhere in its request
// (parameters, JSON body), preferring to refuse.

// LedgerTableName is local mode's run ledger table of a broker.
func LedgerTableName(broker string) string { return broker + "-runs" }

// jobGuardDenied names what key's request must not touch and the statement
// that denies it ("" when none does).
func (k *keyring) jobGuardDenied(key endpointKey, svc string, params map[string]string, body []byte) (what, sid string) {
	if !key.job || k.broker == "" {
		return "", ""
	}
	var names func(string) bool
	switch svc {
	case "dynamodb":
		ledger := LedgerTableName(k.broker)
		names = func(s string) bool { return strings.Contains(s, ledger) }
		what, sid = "the broker's run ledger", "broker-guard's NeverTouchTheRunLedger"
	case "ecs":
		names = func(s string) bool {
			return s == k.broker || strings.Contains(s, ":cluster/"+k.broker) || strings.Contains(s, "/"+k.broker+"/")
		}
		what, sid = "the broker's cluster or its tasks", "broker-guard's NeverControlTheBrokerCluster and NeverControlTasksOnTheBrokerCluster"
	case "sns":
		names = func(s string) bool { return strings.HasSuffix(s, ":"+k.broker) }
		what, sid = "the broker's topic", "broker-guard's NeverPublishToTheBroker"
	case "logs":
		group := RunLogGroupName(k.broker)
		names = func(s string) bool { return strings.Contains(s, group) }
		what, sid = "the broker's run log group", "broker-guard's NeverTouchTheRunLog"
	default:
		return "", ""
	}
	var doc any
	if json.Unmarshal(body, &doc) == nil && namesAny(doc, names) {
		return what, sid
	}
	raw, err := url.QueryUnescape(string(body))
	if err != nil {
		raw = string(body)
	}
	if names(raw) {
		return what, sid
	}
	for p, v := range params {
		if names(p) || names(v) {
			return what, sid
		}
	}
	return "", ""
}

// namesAny reports whether any key or string in the JSON value v is one
// names matches.
func namesAny(v any, names func(string) bool) bool {
	switch v := v.(type) {
	case string:
		return names(v)
	case []any:
		for _, e := range v {
			if namesAny(e, names) {
				return true
			}
		}
	case map[string]any:
		for key, e := range v {
			if names(key) || namesAny(e, names) {
				return true
			}
		}
	}
	return false
}
