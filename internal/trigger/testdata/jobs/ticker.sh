#!/bin/sh
# ticker.sh: prints a numbered line every 0.1 s until stopped.
trap 'exit 143' TERM
i=0
while :; do i=$((i+1)); echo "tick $i"; sleep 0.1; done
