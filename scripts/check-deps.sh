#!/usr/bin/env bash
# Checks the tools `make demo` and `make test` need, and says how to get each
# one that is missing. Usage: scripts/check-deps.sh demo|test
set -u
need=${1:-test}
missing=0
hint() { echo "missing: $1" >&2; echo "  get it: $2" >&2; missing=1; }

# Node.js for CDK synthesis. The floor is the jsii runtime's (aws/jsii-runtime-go
# in go.mod, v1.139.0): it supports Node 22 and 24; Node 20 (end of life
# 2026-04-30, out of jsii support since 2026-10-30) still works but every
# synth prints a banner (silenced by JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20);
# older ones are unsupported. The pinned CDK CLI (aws-cdk 2.1148.1) declares
# node >= 18 but its AWS SDK warns below 22.
NODE_SUPPORTED=22 NODE_WORKS=20
check_node() {
  if ! command -v node >/dev/null 2>&1; then
    hint "Node.js $NODE_SUPPORTED+ (CDK synthesis runs jsii on Node)" "https://nodejs.org or: apt-get install nodejs"
    return
  fi
  local v major
  v=$(node --version 2>/dev/null); major=${v#v}; major=${major%%.*}
  case $major in ''|*[!0-9]*) hint "Node.js $NODE_SUPPORTED+ (node --version printed \"$v\")" "https://nodejs.org"; return;; esac
  if [ "$major" -lt "$NODE_WORKS" ]; then
    hint "Node.js $NODE_SUPPORTED+ (found $v: the jsii runtime CDK synthesis uses does not support it)" "https://nodejs.org (Node 22 or 24), or nvm install 22"
  elif [ "$major" -lt "$NODE_SUPPORTED" ]; then
    echo "note: Node $v works for CDK synthesis but is past the jsii runtime's support (Node $NODE_SUPPORTED+ is supported): synth prints a warning; JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=$major silences it" >&2
  fi
}

if ! command -v go >/dev/null 2>&1; then
  hint "Go 1.26+" "https://go.dev/doc/install (or your package manager)"
fi
if ! command -v moto_server >/dev/null 2>&1; then
  hint "moto_server (the local AWS emulator)" 'pip install "moto[server]"'
fi
if [ "$need" = test ]; then
  command -v cfn-lint >/dev/null 2>&1 || hint "cfn-lint (lints the synthesized CloudFormation template)" "pip install cfn-lint"
  check_node
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
