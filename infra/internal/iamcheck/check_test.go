package iamcheck

import (
	"fmt"
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/config"
)

// check evaluates a scenario's requests and the forbidden list, and fails
// t for every call denied, every forbidden call allowed (or denied by
// another statement than the list names) and every unused grant without a
// reason. Forbidden entries that await the isolation branches are skipped
// in their own subtests, with today's decision in the skip message.
func check(t *testing.T, root, name string, p *Replay, list *List, cfg *config.Config, requester string) Section {
	t.Helper()
	sec := Section{Name: name, Skipped: p.Skipped, Roles: p.Stack.Roles, External: p.Stack.External}
	fail := func(format string, args ...any) {
		t.Helper()
		msg := fmt.Sprintf(format, args...)
		sec.Failures = append(sec.Failures, strings.TrimPrefix(msg, name+": "))
		t.Error(msg)
	}
	sec.Calls = distinct(p.Requests)
	all := make([]Request, 0, len(sec.Calls))
	for _, c := range sec.Calls {
		all = append(all, c.Req)
	}
	type fcase struct {
		entry Forbidden
		req   *Request
		skip  string
	}
	var fcases []fcase
	for _, f := range list.Forbidden {
		reqs, skip := p.ForbiddenRequests(f, cfg, requester)
		if skip != "" {
			fcases = append(fcases, fcase{entry: f, skip: skip})
			continue
		}
		for i := range reqs {
			reqs[i].ID = fmt.Sprintf("forbidden-%d", len(all))
			all = append(all, reqs[i])
			r := reqs[i]
			fcases = append(fcases, fcase{entry: f, req: &r})
		}
	}
	decs, err := Evaluate(root, all)
	if err != nil {
		t.Fatal(err)
	}

	uses := map[string][]string{}
	for i, c := range sec.Calls {
		d := decs[c.Req.ID]
		sec.Calls[i].Dec = d
		if d.Result != "Allowed" {
			fail("%s: %s by %s (%s) is %s, want Allowed: %s%s", name, c.Req.Action, c.Req.Caller, c.Describe(), d.Result, reasons(d.Denials, c.Req), d.Error)
			continue
		}
		for _, g := range d.Grants {
			uses[g.Key(c.Req)] = append(uses[g.Key(c.Req)], c.Req.Caller+": "+c.Describe())
		}
	}

	for _, fc := range fcases {
		res := ForbiddenResult{Entry: fc.entry}
		if fc.req == nil {
			if strings.HasPrefix(fc.skip, "error: ") {
				fail("%s: forbidden %s cannot be evaluated: %s", name, fc.entry.ID, fc.skip)
			}
			res.Caller, res.Result, res.Status = fc.entry.As, "not applicable", "not applicable: "+fc.skip
			sec.Forbidden = append(sec.Forbidden, res)
			continue
		}
		d := decs[fc.req.ID]
		res.Caller, res.Result = fc.req.Caller, d.Result
		res.DeniedBy = reasons(d.Denials, *fc.req)
		ok := false
		if fc.entry.DeniedBy == "implicit" {
			ok = d.Result == "ImplicitlyDenied"
		} else if d.Result == "ExplicitlyDenied" {
			for _, dn := range d.Denials {
				k := dn.Key(*fc.req)
				ok = ok || dn.Explicit && (k == fc.entry.DeniedBy || strings.HasSuffix(k, "/"+fc.entry.DeniedBy))
			}
		}
		today := fmt.Sprintf("%s by %s: today %s", fc.entry.Call, fc.req.Caller, d.Result)
		if d.Result == "Allowed" {
			var by []string
			for _, g := range d.Grants {
				by = append(by, g.Key(*fc.req))
			}
			today += " by " + strings.Join(by, ", ")
		} else if res.DeniedBy != "" {
			today += " (" + res.DeniedBy + ")"
		}
		switch {
		case ok && fc.entry.Awaits != "":
			res.Status = "denied"
			fail("%s: forbidden %s is now denied by %s as listed: remove its `awaits: %s` from iam.yaml", name, fc.entry.ID, fc.entry.DeniedBy, fc.entry.Awaits)
		case ok:
			res.Status = "denied"
		case fc.entry.Awaits != "":
			res.Status = "awaits " + fc.entry.Awaits + ": " + today + ", wants " + fc.entry.DeniedBy
			t.Run("forbidden/"+fc.entry.ID+"/"+fc.req.Caller, func(t *testing.T) {
				t.Skipf("awaits the %s branch: %s; wants it denied by %s (%s)", fc.entry.Awaits, today, fc.entry.DeniedBy, fc.entry.Reason)
			})
		default:
			res.Status = "FAILS: " + today
			fail("%s: forbidden %s (%s): %s, want denied by %s%s", name, fc.entry.ID, fc.entry.Reason, today, fc.entry.DeniedBy, d.Error)
		}
		sec.Forbidden = append(sec.Forbidden, res)
	}

	allow := p.Stack.AllowStatements()
	for _, k := range sortedKeys(allow) {
		su := StatementUse{Statement: allow[k], UsedBy: uses[k]}
		if len(su.UsedBy) == 0 {
			if su.Reason = list.ReasonFor(k, name); su.Reason == "" {
				fail("%s: unused grant %s %s: no recorded call uses it and iam.yaml gives no reason (remove it, or list why it stays)", name, k, allow[k].Summary())
			}
		}
		sec.Statements = append(sec.Statements, su)
	}
	return sec
}

func reasons(rs []Reason, req Request) string {
	var out []string
	for _, r := range rs {
		switch {
		case r.Explicit:
			out = append(out, "explicit Deny "+r.Key(req))
		case r.Type == "resource" && req.ResourcePolicy != nil:
			out = append(out, "no Allow in "+req.ResourcePolicy.Name)
		default:
			out = append(out, "no Allow in the "+r.Type+" policies")
		}
	}
	return strings.Join(out, ", ")
}
