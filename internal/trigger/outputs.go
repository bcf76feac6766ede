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

// githubOwnOutputs are deploy-trigger's own step outputs, in the order it
// writes them. A job output whose name is one of them in any case is not
// written under its own name (it stays in "outputs"): GitHub Actions reads
// step outputs case-insensitively, a later write winning, so a job writing
// "Exit-Code=0" would otherwise turn a failed run's exit-code into 0.
var githubOwnOutputs = []string{"run-id", "exit-code", "outcome", "task-arn", "requested-by", "outputs"}

func githubReserved(name string) bool {
	return slices.Contains(githubOwnOutputs, protocol.OutputNameKey(name))
}

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

// githubOutputs renders a run's result for $GITHUB_OUTPUT: the job's
// outputs by name first, then deploy-trigger's own outputs (run-id,
// exit-code, outcome, task-arn, requested-by and "outputs", the job's outputs
// as one JSON object). Own outputs come last so that, were a job output ever
// to share a name with one of them, the Actions runner (later write wins)
// would keep deploy-trigger's.
func githubOutputs(r *Result, delimiter func() string) (string, []string) {
	byName, js, warnings := githubJobOutputParts(r.Outputs, delimiter)
	own := fmt.Sprintf("run-id=%s\nexit-code=%d\noutcome=%s\ntask-arn=%s\nrequested-by=%s\n", r.RunID, r.Code, r.Outcome, r.TaskARN, r.RequestedBy)
	return byName + own + js, warnings
}

// githubJobOutputs renders the job's outputs for $GITHUB_OUTPUT, by name and
// then "outputs", for a caller that writes deploy-trigger's other outputs
// itself (githubOutputs writes them all, in the safe order).
func githubJobOutputs(outs []protocol.JobOutput, delimiter func() string) (string, []string) {
	byName, js, warnings := githubJobOutputParts(outs, delimiter)
	return byName + js, warnings
}

// githubJobOutputParts renders the job's outputs by name, in the heredoc form
// with a random delimiter, and "outputs" as a JSON object ("outputs={}" when
// there are none). A value with a line equal to the delimiter (it would end
// the heredoc early and let the job set other outputs) is refused, with a
// warning; so is a name that is one of deploy-trigger's own outputs, or that
// an earlier output already has, compared case-insensitively
// (protocol.OutputNameKey).
func githubJobOutputParts(outs []protocol.JobOutput, delimiter func() string) (byName, js string, warnings []string) {
	if len(outs) == 0 {
		return "", "outputs={}\n", nil
	}
	heredoc := func(b *strings.Builder, name, value string) bool {
		d := delimiter()
		if slices.Contains(strings.Split(value, "\n"), d) {
			return false
		}
		fmt.Fprintf(b, "%s<<%s\n%s\n%s\n", name, d, value, d)
		return true
	}
	var all strings.Builder
	j, _ := json.Marshal(outputsMap(outs))
	if !heredoc(&all, "outputs", string(j)) {
		return "", "", []string{"the job's outputs contain the GITHUB_OUTPUT delimiter: no output written"}
	}
	var b strings.Builder
	seen := make(map[string]string, len(outs))
	for _, o := range outs {
		key := protocol.OutputNameKey(o.Name)
		if githubReserved(o.Name) {
			warnings = append(warnings, fmt.Sprintf("job output %q has the name of a deploy-trigger output (names are case-insensitive): read it from the outputs JSON", o.Name))
			continue
		}
		if first, dup := seen[key]; dup {
			warnings = append(warnings, fmt.Sprintf("job output %q has the name of job output %q but for case (names are case-insensitive): read it from the outputs JSON", o.Name, first))
			continue
		}
		seen[key] = o.Name
		if !heredoc(&b, o.Name, o.Value) {
			warnings = append(warnings, fmt.Sprintf("job output %q contains the GITHUB_OUTPUT delimiter: not written", o.Name))
		}
	}
	return b.String(), all.String(), warnings
}
