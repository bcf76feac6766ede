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
  # The IAM evaluator (infra/internal/iamcheck): @cloud-copilot/iam-simulate,
  # pinned by tools/iam-eval/package-lock.json; a test-only tool (AGPL-3.0)
  # that no release contains. Installed, or brought up to date, here.
  eval_dir="$(dirname "$0")/../tools/iam-eval"
  if command -v npm >/dev/null 2>&1; then
    if [ ! -f "$eval_dir/node_modules/.package-lock.json" ] || [ "$eval_dir/package-lock.json" -nt "$eval_dir/node_modules/.package-lock.json" ]; then
      echo "installing the IAM evaluator (tools/iam-eval: npm ci)" >&2
      (cd "$eval_dir" && npm ci --no-audit --no-fund --silent) || hint "the IAM evaluator's packages (tools/iam-eval)" "cd tools/iam-eval && npm ci"
    fi
  else
    hint "npm (installs the IAM evaluator in tools/iam-eval)" "it comes with Node.js: https://nodejs.org"
  fi
fi
exit $missing
