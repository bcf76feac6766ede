#!/bin/sh
# sleeper.sh: says it started, then waits to be stopped (at most a minute,
# so that a test that kills its runner leaves nothing running for long).
echo "sleeper started"
trap 'echo "sleeper got SIGTERM"; exit 143' TERM
i=0
while [ "$i" -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
