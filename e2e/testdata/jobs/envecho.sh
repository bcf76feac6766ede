#!/bin/sh
# envecho.sh: prints GREETING, which comes from the job's static environment.
printf '%s\n' "$GREETING"
