# deploy-broker — see README.md.
SHELL := /bin/bash
BIN := bin
GO ?= go
VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
LDFLAGS := -X github.com/deploy-broker/deploy-broker/internal/trigger.Version=$(VERSION)
export JSII_SILENCE_WARNING_DEPRECATED_NODE_VERSION := 1

.PHONY: demo test build bench fuzz synth clean

# The demo: a real run through deploy-trigger, the dispatcher and the runner
# against the local emulator. Exits with the job's exit code.
demo:
	@scripts/check-deps.sh demo
	@$(MAKE) --no-print-directory build
	$(BIN)/deploy-broker-local -config examples/broker.yaml -- website version=1.4.2

# Every test: unit, end-to-end through moto, CDK synth + cdk-nag + cfn-lint,
# and a short run of every fuzz target.
test:
	@scripts/check-deps.sh test
	@scripts/test.sh 10s

build:
	@mkdir -p $(BIN)
	$(GO) build -ldflags '$(LDFLAGS)' -o $(BIN)/deploy-trigger ./cmd/trigger
	$(GO) build -o $(BIN)/deploy-runner ./cmd/runner
	$(GO) build -o $(BIN)/deploy-broker-local ./cmd/broker-local

bench: build
	@scripts/check-deps.sh demo
	$(GO) run ./bench
	$(GO) test -run '^$$' -bench . -benchmem ./internal/...

# Longer fuzzing: make fuzz FUZZTIME=5m
FUZZTIME ?= 2m
fuzz:
	@scripts/fuzz.sh $(FUZZTIME)

synth:
	cd infra && npm ci --no-audit --no-fund && npx cdk synth

clean:
	rm -rf $(BIN) .local infra/cdk.out
