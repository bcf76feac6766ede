#!/bin/sh
# chatter.sh N CODE: line 1 to stdout, line 2 to stderr, … then exit CODE.
n=$1
i=1
while [ "$i" -le "$n" ]; do
  if [ $((i % 2)) -eq 1 ]; then
    echo "line $i out"
  else
    echo "line $i err" >&2
  fi
  i=$((i + 1))
done
exit "$2"
