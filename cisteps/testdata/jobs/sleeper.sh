#!/bin/sh
# sleeper.sh: says it started, then waits to be stopped.
echo "sleeper started"
trap 'echo "sleeper got SIGTERM"; exit 143' TERM
while :; do sleep 0.1; done
