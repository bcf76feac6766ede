package trigger

import (
	"encoding/json"
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/deploy-broker/deploy-broker/internal/exitcode"
	"github.com/deploy-broker/deploy-broker/internal/ledger"
)

// printRuns prints the runs as a table, or as JSON.
func printRuns(w io.Writer, mode string, runs []historyRun) {
	if mode == "json" {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		for _, r := range runs {
			_ = enc.Encode(r)
		}
		return
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "RUN ID\tJOB\tREQUESTED BY\tSTARTED\tDURATION\tOUTCOME")
	for _, r := range runs {
		outcome := r.Outcome
		if r.ExitCode != nil && outcome == ledger.OutcomeFailed {
			outcome += fmt.Sprintf(" (%d)", *r.ExitCode)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", r.RunID, r.Job, cell(firstNonEmpty(r.RequestedBy, r.Requester), 60), shortTime(r.CreatedAt),
			durationCell(r), outcome)
	}
	_ = tw.Flush()
}

func printRun(w io.Writer, mode string, r historyRun) {
	if mode == "json" {
		enc := json.NewEncoder(w)
		enc.SetEscapeHTML(false)
		_ = enc.Encode(r)
		return
	}
	row := func(k, v string) {
		if v != "" {
			fmt.Fprintf(w, "%-15s %s\n", k+":", v)
		}
	}
	row("run", r.RunID)
	row("job", r.Job)
	row("requested by", r.RequestedBy)
	row("requester", r.Requester)
	row("key", r.Key)
	outcome := r.Outcome
	if r.ExitCode != nil {
		outcome += fmt.Sprintf(" (exit code %d)", *r.ExitCode)
	}
	if r.LogExitCode != nil { // ECS's container exit code counts (issue 22)
		outcome += fmt.Sprintf("; DISAGREES with the run log's exit record (%d): ECS's container exit code counts", *r.LogExitCode)
	}
	row("outcome", outcome)
	namedValues(w, "parameters", r.Params)
	if r.Approval != "" { // "approved by:", "rejected by:"
		who := orUnknown(r.ApprovalBy)
		if r.ApprovalAt != "" {
			who += " at " + r.ApprovalAt
		}
		row(r.Approval+" by", who)
	}
	row("requested", r.RequestedAt)
	// When the broker took the request (it claimed the run id in the
	// ledger), not when the job started: that is the start rows' (printStart)
	// and the task's.
	row("received", r.CreatedAt)
	row("ended", r.EndedAt)
	if r.DurationMS > 0 {
		row("duration", durationCell(r))
	}
	row("task", r.TaskARN)
	printStart(w, r.Start)
	if r.StopCode != "" || r.StopReason != "" {
		row("stopped", strings.TrimSpace(r.StopCode+" "+r.StopReason))
	}
	if r.RejectCode != "" || r.Reason != "" {
		row("rejected", strings.TrimSpace(r.RejectCode+": "+r.Reason))
	}
	if r.Exit != nil {
		row("exit", fmt.Sprintf("%s: %s (%d lines, %d bytes)", r.Exit.Reason, r.Exit.Message, r.Exit.Lines, r.Exit.Bytes))
	}
	namedValues(w, "outputs", r.Outputs)
	row("cancel asked", r.CancelAsked)
	row("cancelled", r.CancelledAt)
	row("cancelled by", r.CancelledBy)
	row("released", r.ReleasedAt)
}

// namedValues prints m as name=value rows sorted by name, the first under
// label ("parameters:"), each value cut to 200 characters.
func namedValues(w io.Writer, label string, m map[string]string) {
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	for i, k := range names {
		l := ""
		if i == 0 {
			l = label + ":"
		}
		fmt.Fprintf(w, "%-15s %s=%s\n", l, k, cell(m[k], 200))
	}
}

func shortTime(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func durationCell(r historyRun) string {
	if r.DurationMS <= 0 {
		return "-"
	}
	return roundDuration(time.Duration(r.DurationMS) * time.Millisecond).String()
}

// cell makes s one short line.
func cell(s string, n int) string {
	s = strings.NewReplacer("\n", " ", "\r", " ", "\t", " ").Replace(s)
	if len(s) > n {
		s = s[:n] + "…"
	}
	return s
}

// notInLedger is the error of show, logs and attach for a run id the ledger
// does not hold: a usage error (240), as an unknown environment is. 241
// stays the broker's refusal of a request.
func notInLedger(runID, table string) error {
	return exitcode.Errorf(exitcode.Usage, "run %s is not in the run ledger of table %s (a wrong broker, a run older than the ledger's retention, or a run id never published)", runID, table)
}
