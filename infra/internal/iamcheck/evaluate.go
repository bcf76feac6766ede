package iamcheck

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
)

// ToolDir is the evaluator's directory in the repository (its own
// package.json and package-lock.json: @cloud-copilot/iam-simulate, pinned,
// AGPL-3.0 and so a test-only tool that no release contains).
const ToolDir = "tools/iam-eval"

// Decision is the evaluator's answer to one request.
type Decision struct {
	ID      string
	Result  string // Allowed, ExplicitlyDenied, ImplicitlyDenied, error
	Grants  []Reason
	Denials []Reason
	Ignored []string
	Error   string
}

// Reason names a deciding statement.
type Reason struct {
	Type     string // identity, resource
	Policy   string
	Sid      string
	Explicit bool
}

// Key is the statement's report key (policy/sid); a resource policy's
// statements are keyed by the policy the request carried.
func (r Reason) Key(req Request) string {
	if r.Type == "resource" && req.ResourcePolicy != nil {
		return req.ResourcePolicy.Name + "/" + r.Sid
	}
	return r.Policy + "/" + r.Sid
}

// Evaluate runs every request through iam-simulate in one node process.
func Evaluate(repoRoot string, reqs []Request) (map[string]Decision, error) {
	type sim struct {
		ID         string         `json:"id"`
		Simulation map[string]any `json:"simulation"`
	}
	var in []sim
	for _, r := range reqs {
		var ids []any
		for _, p := range r.Identity {
			ids = append(ids, map[string]any{"name": p.Name, "policy": p.Doc})
		}
		if ids == nil {
			ids = []any{}
		}
		ctx := map[string]any{}
		for k, v := range r.Context {
			ctx[k] = v
		}
		s := map[string]any{
			"request": map[string]any{"principal": r.Principal, "action": r.Action,
				"resource":         map[string]any{"resource": r.Resource, "accountId": Account},
				"contextVariables": ctx},
			"identityPolicies": ids, "serviceControlPolicies": []any{}, "resourceControlPolicies": []any{},
		}
		if r.ResourcePolicy != nil {
			s["resourcePolicy"] = r.ResourcePolicy.Doc
		}
		in = append(in, sim{ID: r.ID, Simulation: s})
	}
	body, err := json.Marshal(in)
	if err != nil {
		return nil, err
	}
	if f := os.Getenv("IAMCHECK_DUMP"); f != "" {
		// The evaluator's input, to run it by hand (node tools/iam-eval/evaluate.js < FILE).
		_ = os.WriteFile(f, body, 0o644)
	}
	dir := filepath.Join(repoRoot, ToolDir)
	cmd := exec.Command("node", filepath.Join(dir, "evaluate.js"))
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(body)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("running the evaluator (%s; install it with: cd %s && npm ci): %v\n%s", ToolDir, ToolDir, err, stderr.String())
	}
	var res []struct {
		ID      string   `json:"id"`
		Result  string   `json:"result"`
		Error   string   `json:"error"`
		Ignored []string `json:"ignored"`
		Grants  []struct {
			Type, Policy, Sid string
			Explicit          bool
		} `json:"grants"`
		Denials []struct {
			Type, Policy, Sid string
			Explicit          bool
		} `json:"denials"`
	}
	if err := json.Unmarshal(out, &res); err != nil {
		return nil, fmt.Errorf("reading the evaluator's answer: %v", err)
	}
	m := map[string]Decision{}
	for _, r := range res {
		d := Decision{ID: r.ID, Result: r.Result, Error: r.Error, Ignored: r.Ignored}
		for _, g := range r.Grants {
			d.Grants = append(d.Grants, Reason(g))
		}
		for _, g := range r.Denials {
			d.Denials = append(d.Denials, Reason(g))
		}
		m[r.ID] = d
	}
	return m, nil
}
