#!/usr/bin/env bash
# Installs GoReleaser (pinned below) into $(go env GOBIN), or
# $(go env GOPATH)/bin, by building it from source through the Go module
# proxy, unless that exact version is already there. GoReleaser's own
# release downloads are not used: the module proxy is the one source every
# machine that builds this project can reach.
#
# A cold install (326 modules, empty caches) took 13m48s on 2 heavily
# shared cores, about 5 min of CPU (docs/BENCHMARKS.md); when this version
# is already installed the script takes under 0.1 s. CI should keep
# GOPATH/bin (and the Go caches) between runs.
#
# Usage: scripts/install-goreleaser.sh [--print-path]
#   --print-path  print the binary's path and exit (installs nothing)
set -euo pipefail
version=v2.15.1
gobin=$(go env GOBIN)
gobin=${gobin:-$(go env GOPATH)/bin}
bin="$gobin/goreleaser"
if [[ "${1:-}" == --print-path ]]; then
  echo "$bin"
  exit 0
fi
if [[ -x "$bin" ]] && "$bin" --version 2>/dev/null | grep -qE "^GitVersion:[[:space:]]+v?${version#v}\$"; then
  exit 0
fi
echo "installing goreleaser $version into $gobin (go install; a cold build takes minutes)" >&2
# Outside the module: goreleaser's requirements must not mix with ours.
cd "${TMPDIR:-/tmp}"
GOFLAGS= GOBIN="$gobin" go install "github.com/goreleaser/goreleaser/v2@$version"
"$bin" --version | grep -E '^GitVersion:' >&2
