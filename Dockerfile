# syntax=docker/dockerfile:1
#
# deploy-runner: the entrypoint of every deploy-broker job's Fargate task.
#
#   docker buildx build --platform linux/amd64,linux/arm64 -t <registry>/deploy-runner:<version> --push .
#   docker build -t deploy-runner .                  # runner on Alpine, this machine's platform
#   docker build --target binary -o out .            # just the static binary, in out/
#
# Two uses (docs/INFRA.md, "The runner image"):
#   1. as the task's image: runner.image in the broker configuration;
#   2. as a stage to copy the runner from into a job's own tool image
#      (terraform, kubectl, cdk…):
#        COPY --from=<registry>/deploy-runner:<version> /usr/local/bin/deploy-runner /usr/local/bin/deploy-runner
#        USER 10001:10001
#        ENTRYPOINT ["/usr/local/bin/deploy-runner"]
#
# Only the runner is built: the build compiles ./cmd/runner and Go fetches
# just the modules its packages import (the AWS SDK's SQS client and
# credential chain, smithy, ulid). There is deliberately no `go mod
# download`: that fetches every module in go.mod, the CDK's among them
# (aws-cdk-go alone is ~78 MB zipped), for the infra app the runner never
# links. cisteps/dockerfile_test.go runs this build step against an empty
# module cache and fails if a CDK module is fetched.
#
# Base images are pinned by the digest of their multi-arch index (amd64 and
# arm64 included), so a rebuild gets the same bases. The digests were taken
# from public Dockerfiles pinning the same tags; no registry was reachable
# where this file was written, so confirm them once with
#   docker buildx imagetools inspect golang:1.26.8-alpine
#   docker buildx imagetools inspect alpine:3.24
# and let Renovate/Dependabot keep them current. The Go image's patch
# version must be at least go.mod's `go` line (GOTOOLCHAIN=local).
#
# The runner is not an init and does not reap orphaned processes. The task
# definition sets initProcessEnabled, so on ECS an init is PID 1; elsewhere
# run the image with one: `docker run --init …`.

FROM --platform=$BUILDPLATFORM golang:1.26.8-alpine@sha256:8ac98ca534ac3f51e1f420a1dd2c15e74c75cfa0f23f3ad27eb5d7236c349a0c AS build
WORKDIR /src
COPY go.mod go.sum ./
# Only Go sources the runner can import: never infra/, node_modules or cdk.out.
COPY cmd/runner/ cmd/runner/
COPY internal/ internal/
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH GOFLAGS=-mod=readonly \
    go build -trimpath -buildvcs=false -ldflags="-s -w" -o /out/deploy-runner ./cmd/runner

# The static binary alone: `docker build --target binary -o out .`
FROM scratch AS binary
COPY --from=build /out/deploy-runner /deploy-runner

# The runner image: static binary, CA certificates, BusyBox sh for
# shell-script jobs, a non-root user. Tasks run with a read-only root
# filesystem and a writable /tmp, hence HOME=/tmp.
FROM alpine:3.24@sha256:28bd5fe8b56d1bd048e5babf5b10710ebe0bae67db86916198a6eec434943f8b AS runner
RUN apk add --no-cache ca-certificates \
 && addgroup -S -g 10001 runner \
 && adduser -S -D -H -u 10001 -G runner -s /sbin/nologin runner
COPY --from=build /out/deploy-runner /usr/local/bin/deploy-runner
ENV HOME=/tmp TMPDIR=/tmp
WORKDIR /work
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/deploy-runner"]
