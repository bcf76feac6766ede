#!/bin/sh
# steps.sh N [GOFILE]: N numbered lines, alternating stdout and stderr; after
# the first half waits until GOFILE exists (when given); writes outputs,
# exits 3.
n=$1
go=$2
i=1
while [ "$i" -le "$n" ]; do
  if [ $((i % 2)) -eq 0 ]; then echo "step $i err" >&2; else echo "step $i out"; fi
  if [ -n "$go" ] && [ "$i" -eq $((n / 2)) ]; then
    while [ ! -e "$go" ]; do sleep 0.05; done
  fi
  i=$((i + 1))
done
printf 'image=app:%s\nnotes<<EOF\nfirst line\nsecond line\nEOF\n' "$n" >> "$DEPLOY_BROKER_OUTPUT"
exit 3
