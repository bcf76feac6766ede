package cisteps

import (
	"bytes"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deploy-broker/deploy-broker/internal/protocol"
)

// Issue 25: docs/CI.md's outputs table lists every output action.yml
// declares (it lacked requested-by).
func TestCIDocListsEveryActionOutput(t *testing.T) {
	doc := readFile(t, filepath.Join(repoRoot, "docs/CI.md"))
	for name := range loadAction(t).Outputs {
		if !strings.Contains(doc, "\n| `"+name+"` | ") {
			t.Errorf("docs/CI.md's outputs table has no row for the action's output %s", name)
		}
	}
}

// Issue 25: docs/CI.md's dry-run example shows a request as deploy-trigger
// prints it: the current request version (it showed "v": 1), and only
// fields a request has.
func TestCIDocDryRunShowsARealRequest(t *testing.T) {
	doc := readFile(t, filepath.Join(repoRoot, "docs/CI.md"))
	_, after, ok := strings.Cut(doc, "dry run: would publish as ")
	if !ok {
		t.Fatal("docs/CI.md shows no dry run")
	}
	_, after, _ = strings.Cut(after, "\n")
	end := strings.Index(after, "\n}\n")
	if end < 0 {
		t.Fatal("the dry run's request does not end with a } line")
	}
	dec := json.NewDecoder(bytes.NewReader([]byte(after[:end+2])))
	dec.DisallowUnknownFields()
	var r protocol.Request
	if err := dec.Decode(&r); err != nil {
		t.Fatalf("docs/CI.md's dry-run request is not a request: %v", err)
	}
	if r.V != protocol.RequestVersion {
		t.Errorf(`docs/CI.md's dry-run request has "v": %d; deploy-trigger sends version %d`, r.V, protocol.RequestVersion)
	}
}
