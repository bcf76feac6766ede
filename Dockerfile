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
#        ENTRYPOINT ["/usr/local/bin/deploy-runner"]
#
# The image's USER is the non-root `runner` (10001): as such the runner
# works, but the job shares its uid (the runner is non-dumpable, so the job
# still cannot read its environment or memory; it says so in its log). The
# stack's task definitions run it as root instead (User 0:0, every default
# capability dropped but CHOWN, KILL, SETGID and SETUID), and the runner
# starts the job under uid/gid 10002 (the `job` user below;
# DEPLOY_BROKER_JOB_UID changes it; the uid needs no passwd entry), so that
# the job can read nothing of the runner's (the task role's credentials URI
# in its environment, its memory, its descriptors) nor signal it. With
# `docker run`: `--user 0:0 --cap-drop=ALL --cap-add=CHOWN --cap-add=KILL
# --cap-add=SETGID --cap-add=SETUID`.
#
# Only the runner is built: the build compiles ./cmd/runner and Go fetches
# just the modules its packages import (the AWS SDK's SQS and STS clients and
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
# shell-script jobs, a non-root user for the runner and one for the job.
# Tasks run with a read-only root filesystem and a writable /tmp, hence
# HOME=/tmp.
FROM alpine:3.24@sha256:28bd5fe8b56d1bd048e5babf5b10710ebe0bae67db86916198a6eec434943f8b AS runner
RUN apk add --no-cache ca-certificates \
 && addgroup -S -g 10001 runner \
 && adduser -S -D -H -u 10001 -G runner -s /sbin/nologin runner \
 && addgroup -S -g 10002 job \
 && adduser -S -D -H -u 10002 -G job -s /sbin/nologin job
COPY --from=build /out/deploy-runner /usr/local/bin/deploy-runner
ENV HOME=/tmp TMPDIR=/tmp
WORKDIR /work
# The task definition overrides this with 0:0 (see the top of this file).
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/deploy-runner"]
