package protocol

import (
	"fmt"
	"regexp"
	"unicode/utf8"
)

// Job outputs: name=value pairs a job hands back to the pipeline (issue 17).
// The runner reads them from the file named by EnvOutput after the job
// exits and sends them in the exit record; deploy-trigger writes them to
// $GITHUB_OUTPUT, --output json and the result file.
//
// They travel as an ordered list of {"name","value"} objects rather than a
// JSON object keyed by name: the strict decoder (checkKeys) accepts only
// lower-case keys, and a list keeps the order the job wrote them in.

// Limits on job outputs, enforced by the runner (which drops what is over
// them, with a log line) and checked again by every decoder.
const (
	MaxOutputs          = 64
	MaxOutputNameLength = 64
	MaxOutputValueBytes = 16 << 10
	// MaxOutputsBytes bounds names plus values of all outputs of a run: the
	// exit record stays far below SQS's 1 MiB and a ledger item's 400 KB.
	MaxOutputsBytes = 64 << 10
)

// EnvOutput names the file a job writes its outputs to; the runner sets it
// on the job's environment.
const EnvOutput = "DEPLOY_BROKER_OUTPUT"

var outputNameRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_-]{0,63}$`)

// ValidOutputName reports whether name may name a job output: letters,
// digits, '_' and '-', not starting with a digit or '-', at most 64
// characters (what GitHub Actions accepts as a step output name).
func ValidOutputName(name string) bool { return outputNameRE.MatchString(name) }

// JobOutput is one output of a job.
type JobOutput struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// ValidateOutputs checks a decoded list of outputs against the limits: valid
// names, each once, UTF-8 values within the size limits.
func ValidateOutputs(outs []JobOutput) error {
	if len(outs) > MaxOutputs {
		return fmt.Errorf("%d outputs, over the %d limit", len(outs), MaxOutputs)
	}
	seen := make(map[string]bool, len(outs))
	total := 0
	for i, o := range outs {
		if !ValidOutputName(o.Name) {
			return fmt.Errorf("output %d has an invalid name %q", i, truncate(o.Name, 70))
		}
		if seen[o.Name] {
			return fmt.Errorf("output %q appears twice", o.Name)
		}
		seen[o.Name] = true
		if len(o.Value) > MaxOutputValueBytes {
			return fmt.Errorf("output %q has %d bytes, over the %d limit", o.Name, len(o.Value), MaxOutputValueBytes)
		}
		if !utf8.ValidString(o.Value) {
			return fmt.Errorf("output %q is not valid UTF-8", o.Name)
		}
		total += len(o.Name) + len(o.Value)
	}
	if total > MaxOutputsBytes {
		return fmt.Errorf("outputs hold %d bytes, over the %d limit", total, MaxOutputsBytes)
	}
	return nil
}
