#!/bin/sh
# Demo job: pretends to migrate a database, slowly enough that a second
# request has to wait for it.
set -eu
steps=$2
i=1
while [ "$i" -le "$steps" ]; do
  printf 'applying migration %d of %d\n' "$i" "$steps"
  sleep 5
  i=$((i + 1))
done
echo "production database is up to date"
