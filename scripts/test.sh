#!/usr/bin/env bash
# Every test: go.mod tidy, gofmt, go vet, staticcheck, go test of every package
# (unit, end to end through the moto server, reliability suite, CDK synth +
# cdk-nag + cfn-lint), then each fuzz target for a short while. Ends with one
# "packages: N passed, N failed" line. Usage: scripts/test.sh [FUZZTIME]
set -uo pipefail
cd "$(dirname "$0")/.."
fuzztime=${1:-10s}
log=$(mktemp)
trap 'rm -f "$log"' EXIT

# staticcheck, pinned; `go run` fetches it through the module proxy without
# adding it to go.mod.
staticcheck=honnef.co/go/tools/cmd/staticcheck@v0.8.2

# go mod tidy -diff prints the diff and fails when go.mod or go.sum is not
# tidy.
if ! go mod tidy -diff; then
  echo "go.mod/go.sum are not tidy: run go mod tidy" >&2
  exit 1
fi
unformatted=$(gofmt -l $(git ls-files '*.go' 2>/dev/null || find . -name '*.go' -not -path './infra/cdk.out/*' -not -path '*/node_modules/*'))
if [ -n "$unformatted" ]; then
  echo "not gofmt-formatted (run gofmt -w):" $unformatted >&2
  exit 1
fi
go vet ./... || exit 1
go run "$staticcheck" ./... || exit 1
go test -count=1 -timeout 20m ./... 2>&1 | tee "$log"
status=${PIPESTATUS[0]}
passed=$(grep -c '^ok ' "$log")
failed=$(grep -cE '^FAIL[[:space:]]' "$log")
if [ "$status" -eq 0 ]; then
  scripts/fuzz.sh "$fuzztime" || status=1
fi
echo "packages: $passed passed, $failed failed"
exit "$status"
