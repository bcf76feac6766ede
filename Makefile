# deploy-broker — see README.md.
SHELL := /bin/bash
BIN := bin
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
COMMIT ?= $(shell git rev-parse HEAD 2>/dev/null)
# The commit's date, not the time of the build: the same commit links to the
# same binary, so a second `make build` relinks nothing (as .goreleaser.yaml's
# CommitDate). Without git, empty: deploy-trigger --version then shows the VCS
# time Go embedded, or "unknown".
DATE ?= $(shell TZ=UTC0 git log -1 --format=%cd --date=format-local:%Y-%m-%dT%H:%M:%SZ 2>/dev/null)
VERSION_PKG := github.com/deploy-broker/deploy-broker/internal/trigger
LDFLAGS := -X $(VERSION_PKG).Version=$(VERSION) -X $(VERSION_PKG).Commit=$(COMMIT) -X $(VERSION_PKG).Date=$(DATE)
GORELEASER_VERSION := v2.15.1
NO_REMOTE_ENV := GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=remote.origin.url GIT_CONFIG_VALUE_0=https://github.com/deploy-broker/deploy-broker.git
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: demo test race build bench fuzz synth clean release-snapshot goreleaser iam-report

# The demo: a real run through deploy-trigger, the dispatcher and the runner
# against the local emulator. Exits with the job's exit code. The task starts
# after a modelled cold start of 2 s (broker-local's default is 30 s, like
# Fargate's), so that the demo stays quick.
demo:
	@scripts/check-deps.sh demo
	@$(MAKE) --no-print-directory build
	$(BIN)/deploy-broker-local -config examples/broker.yaml -task-start-delay 2s -- website version=1.4.2

# Every test: unit, end-to-end through moto, CDK synth + cdk-nag + cfn-lint,
# and a short run of every fuzz target.
test:
	@scripts/check-deps.sh test
	@scripts/test.sh 10s

# docs/IAM.md: every AWS call local mode makes, evaluated against the
# synthesized stack's IAM policies; the forbidden calls; every grant's use
# (infra/internal/iamcheck, the test TestIAMEvaluation of `make test`).
iam-report:
	@scripts/check-deps.sh test
	$(GO) test -count=1 -run '^TestIAMEvaluation$$' ./infra/internal/iamcheck/ -args -report $(CURDIR)/docs/IAM.md

# The whole suite under the race detector.
race:
	@scripts/check-deps.sh test
	$(GO) test -race -count=1 -timeout 40m ./...

# The first build compiles the AWS SDK and every dependency: a few minutes on
# 2 cores, silent but for these lines (GOFLAGS=-v names each package as it
# compiles); later builds take seconds.
build:
	@mkdir -p $(BIN)
	@echo "building deploy-trigger, the runner and the local broker into $(BIN)/ (the first time: a few minutes; GOFLAGS=-v shows each package)…"
	@echo "  $(BIN)/deploy-trigger"
	@$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/deploy-trigger ./cmd/trigger
	@echo "  $(BIN)/deploy-runner"
	@$(GO) build -o $(BIN)/deploy-runner ./cmd/runner
	@echo "  $(BIN)/deploy-broker-local"
	@$(GO) build -o $(BIN)/deploy-broker-local ./cmd/broker-local

bench: build
	@scripts/check-deps.sh demo
	$(GO) run ./bench
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

# Longer fuzzing: make fuzz FUZZTIME=5m
FUZZTIME ?= 2m
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

# Every release artifact (.goreleaser.yaml) in dist/, without publishing:
# archives, the Lambda zip, checksums. Installs GoReleaser first if needed.
# GoReleaser drops all git information (commit, date) when the clone has no
# remote; such a clone gets the project's URL through the environment only.
release-snapshot: goreleaser
	@if [ -z "$$(git remote)" ]; then export $(NO_REMOTE_ENV); fi; \
	skip=""; command -v syft >/dev/null || { skip=--skip=sbom; echo "syft is not installed: no SBOMs"; }; \
	set -x; "$$(scripts/install-goreleaser.sh --print-path)" release --snapshot --clean $$skip

# GoReleaser $(GORELEASER_VERSION), built from source into $(go env GOPATH)/bin.
goreleaser:
	@scripts/install-goreleaser.sh

synth:
	cd infra && npm ci --no-audit --no-fund && npx cdk synth

clean:
	rm -rf $(BIN) .local infra/cdk.out dist
