package trigger

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// The job's outputs (issue 17): the runner sends them in the exit record;
// deploy-trigger hands them to the pipeline.
//
//   - GitHub mode: $GITHUB_OUTPUT gets "outputs" (all of them as one JSON
//     object, for fromJSON; the composite action can only declare fixed
//     outputs, so this is how a workflow using the action reads them) and
//     each output under its own name (for a workflow that runs
//     deploy-trigger in its own step), in the heredoc form with a random
//     delimiter.
//   - --output json and --result-file: "outputs" in the result object.

// githubReservedOutputs are deploy-trigger's own step outputs: a job output
// of the same name is not written under its own name (it stays in
// "outputs").
var githubReservedOutputs = map[string]bool{"run-id": true, "exit-code": true, "outcome": true, "task-arn": true, "requested-by": true, "outputs": true}

// outputsMap is the outputs by name, nil when there are none.
func outputsMap(outs []protocol.JobOutput) map[string]string {
	if len(outs) == 0 {
		return nil
	}
	m := make(map[string]string, len(outs))
	for _, o := range outs {
		m[o.Name] = o.Value
	}
	return m
}

// randomDelimiter is a heredoc delimiter no value can guess.
func randomDelimiter() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return "deploy_trigger_" + hex.EncodeToString(b[:])
}

// githubJobOutputs renders the job's outputs for $GITHUB_OUTPUT: "outputs"
// as a JSON object ("outputs={}" when there are none), then each output by
// name. A value with a line equal to the delimiter (it would end the heredoc
// early and let the job set other outputs) is refused, with a warning; so is
// a name that is one of deploy-trigger's own outputs.
func githubJobOutputs(outs []protocol.JobOutput, delimiter func() string) (string, []string) {
	if len(outs) == 0 {
		return "outputs={}\n", nil
	}
	var b strings.Builder
	var warnings []string
	heredoc := func(name, value string) bool {
		d := delimiter()
		if slices.Contains(strings.Split(value, "\n"), d) {
			return false
		}
		fmt.Fprintf(&b, "%s<<%s\n%s\n%s\n", name, d, value, d)
		return true
	}
	js, _ := json.Marshal(outputsMap(outs))
	if !heredoc("outputs", string(js)) {
		return "", []string{"the job's outputs contain the GITHUB_OUTPUT delimiter: no output written"}
	}
	for _, o := range outs {
		if githubReservedOutputs[o.Name] {
			warnings = append(warnings, fmt.Sprintf("job output %q has the name of a deploy-trigger output: read it from the outputs JSON", o.Name))
			continue
		}
		if !heredoc(o.Name, o.Value) {
			warnings = append(warnings, fmt.Sprintf("job output %q contains the GITHUB_OUTPUT delimiter: not written", o.Name))
		}
	}
	return b.String(), warnings
}
