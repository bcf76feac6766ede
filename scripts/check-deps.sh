#!/usr/bin/env bash
# Checks the tools `make demo` and `make test` need, and says how to get each
# one that is missing. Usage: scripts/check-deps.sh demo|test
set -u
need=${1:-test}
missing=0
hint() { echo "missing: $1" >&2; echo "  get it: $2" >&2; missing=1; }

if ! command -v go >/dev/null 2>&1; then
  hint "Go 1.26+" "https://go.dev/doc/install (or your package manager)"
fi
if ! command -v moto_server >/dev/null 2>&1; then
  hint "moto_server (the local AWS emulator)" 'pip install "moto[server]"'
fi
if [ "$need" = test ]; then
  command -v cfn-lint >/dev/null 2>&1 || hint "cfn-lint (lints the synthesized CloudFormation template)" "pip install cfn-lint"
  command -v node >/dev/null 2>&1 || hint "Node.js 18+ (CDK synthesis runs jsii on Node)" "https://nodejs.org or: apt-get install nodejs"
fi
exit $missing
