#!/bin/sh
# tagged.sh TAG N: N lines that each name the run's TAG, alternating streams.
i=1
while [ "$i" -le "$2" ]; do
  if [ $((i % 2)) -eq 1 ]; then echo "$1 $i"; else echo "$1 $i" >&2; fi
  i=$((i + 1))
done
