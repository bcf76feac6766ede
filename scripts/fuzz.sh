#!/usr/bin/env bash
# Runs every Go fuzz target in the module for the given time each.
# Usage: scripts/fuzz.sh 10s
set -euo pipefail
t=${1:-10s}
go list -f '{{.ImportPath}} {{.Dir}}' ./... | while read -r pkg dir; do
  for f in $(grep -hoE '^func (Fuzz[A-Za-z0-9_]+)\(' "$dir"/*_test.go 2>/dev/null | sed -E 's/^func (Fuzz[A-Za-z0-9_]+)\(/\1/' | sort -u); do
    echo "fuzz $pkg $f for $t"
    # -fuzzminimizetime: the engine minimises each new interesting input for
    # up to 60 s by default, counting no executions meanwhile; a short smoke
    # run that ends inside such a minimisation failed with "context deadline
    # exceeded" on a loaded machine. A bounded minimisation keeps the smoke
    # run about its fuzztime; a real finding is still reported and kept.
    go test -run '^$' -fuzz "^$f\$" -fuzztime "$t" -fuzzminimizetime 100x "$pkg" >/tmp/fuzz-$f.log 2>&1 || { cat /tmp/fuzz-$f.log; exit 1; }
  done
done
