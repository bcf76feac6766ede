#!/bin/sh
# Demo job: pretends to publish a website. Run by the runner as
#   /bin/sh jobs/website.sh --version X --colour=Y
# Its arguments come from the catalogue's argv template; no shell is built
# from request data.
set -eu
version=$2
colour=${3#--colour=}
printf 'deploying website version %s to the %s slot\n' "$version" "$colour"
for step in render upload invalidate; do
  printf '\033[32m✔\033[0m %s\n' "$step"
  sleep 0.2
done
echo "warning: demo bucket is not real, nothing was uploaded" >&2
printf 'website %s is live\n' "$version"
