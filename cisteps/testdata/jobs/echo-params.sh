#!/bin/sh
# echo-params.sh GREETING NOTE CODE: prints each argument between brackets, exits CODE.
printf 'greeting=[%s]\n' "$1"
printf 'note=[%s]\n' "$2"
echo "exiting with $3" >&2
exit "$3"
