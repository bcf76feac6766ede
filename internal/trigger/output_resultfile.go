package trigger

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
)

// resultFilePrinter writes the run's result as one JSON object to a file
// when the run ends, and otherwise prints as the printer it wraps. CI steps
// that cannot read deploy-trigger's output (Jenkins' sh step must let the
// trigger own the process to cancel on abort) read the run id, outcome and
// task ARN from it.
type resultFilePrinter struct {
	printer
	path   string
	stderr io.Writer
}

func (p *resultFilePrinter) result(r *Result) {
	p.printer.result(r)
	if err := writeFileAtomic(p.path, resultRecord(r)); err != nil {
		fmt.Fprintf(p.stderr, "deploy-trigger: could not write the result file: %v\n", err)
	}
}

// writeFileAtomic writes v as JSON to path through a temporary file and a
// rename, so a reader never sees half a result.
func writeFileAtomic(path string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".deploy-trigger-result-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if _, err := tmp.Write(append(b, '\n')); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}
