# syntax=docker/dockerfile:1
#
# deploy-runner: the entrypoint of every deploy-broker job's Fargate task.
#
#   docker build -t deploy-runner .                  # runner on Alpine (default)
#   docker build --target binary -o out .            # just the static binary
#   docker build --platform linux/amd64 ...          # Fargate's default platform
#
# Put the runner into a job's own tool image (terraform, kubectl, cdk…) with
#   COPY --from=<this image> /usr/local/bin/deploy-runner /usr/local/bin/deploy-runner
#   ENTRYPOINT ["/usr/local/bin/deploy-runner"]
# See docs/INFRA.md.
#
# The runner is not an init and does not reap orphaned processes. The task
# definition sets initProcessEnabled, so on ECS an init is PID 1; elsewhere
# run the image with one: `docker run --init …`.

ARG GO_VERSION=1.26
ARG ALPINE_VERSION=3.22

FROM --platform=$BUILDPLATFORM golang:${GO_VERSION}-alpine AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN --mount=type=cache,target=/go/pkg/mod go mod download
# Only Go sources: never infra/node_modules or cdk.out.
COPY cmd/ cmd/
COPY internal/ internal/
ARG TARGETOS=linux
ARG TARGETARCH=amd64
RUN --mount=type=cache,target=/go/pkg/mod --mount=type=cache,target=/root/.cache/go-build \
    CGO_ENABLED=0 GOOS=$TARGETOS GOARCH=$TARGETARCH \
    go build -trimpath -buildvcs=false -ldflags="-s -w" -o /out/deploy-runner ./cmd/runner

# The static binary alone: `docker build --target binary -o out .`
FROM scratch AS binary
COPY --from=build /out/deploy-runner /deploy-runner

# The runner image: static binary, CA certificates, BusyBox sh for
# shell-script jobs, a non-root user. Tasks run with a read-only root
# filesystem and a writable /tmp, hence HOME=/tmp.
FROM alpine:${ALPINE_VERSION} AS runner
RUN apk add --no-cache ca-certificates \
 && addgroup -S -g 10001 runner \
 && adduser -S -D -H -u 10001 -G runner -s /sbin/nologin runner
COPY --from=build /out/deploy-runner /usr/local/bin/deploy-runner
ENV HOME=/tmp TMPDIR=/tmp
WORKDIR /work
USER 10001:10001
ENTRYPOINT ["/usr/local/bin/deploy-runner"]
