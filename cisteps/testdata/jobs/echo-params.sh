#!/bin/sh
# echo-params.sh GREETING NOTE CODE: prints each argument between brackets,
# hands the bracketed greeting and CODE back as outputs, exits CODE.
printf 'greeting=[%s]\n' "$1"
printf 'note=[%s]\n' "$2"
echo "exiting with $3" >&2
if [ -n "$DEPLOY_BROKER_OUTPUT" ]; then
  printf 'greeting<<END_OF_GREETING_7c1\n[%s]\nEND_OF_GREETING_7c1\ncode=%s\n' "$1" "$3" >> "$DEPLOY_BROKER_OUTPUT"
fi
exit "$3"
