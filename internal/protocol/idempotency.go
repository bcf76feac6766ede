package protocol

import (
	"fmt"
	"regexp"
)

// An idempotency key names a run from the CI side (issue 17): a CI job
// derives it from its own identity (e.g. "gha-<run id>-<attempt>-deploy",
// "jenkins-<job>-<build>") and passes it with --idempotency-key, so that after
// its agent restarts it can find the run again with
// `deploy-trigger attach --key KEY`. The broker stores it in the ledger; it
// does not refuse a second run with the same key (attach takes the newest).

// MaxIdempotencyKeyLength bounds an idempotency key.
const MaxIdempotencyKeyLength = 128

var idempotencyKeyRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._:/@+=-]{0,127}$`)

// ValidateIdempotencyKey accepts "" (none) or a key of letters, digits and
// ._:/@+=- of at most 128 characters, starting with a letter or digit.
func ValidateIdempotencyKey(k string) error {
	if k == "" || idempotencyKeyRE.MatchString(k) {
		return nil
	}
	return fmt.Errorf("idempotency key %q is not valid: at most %d letters, digits and ._:/@+=-, starting with a letter or digit", truncate(k, 40), MaxIdempotencyKeyLength)
}
