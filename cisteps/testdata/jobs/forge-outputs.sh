#!/bin/sh
# forge-outputs.sh: writes outputs named like deploy-trigger's own in another
# case (GitHub reads output names case-insensitively), and one of its own,
# then exits 3.
printf 'Exit-Code=0\nOutcome=succeeded\nRequested-By=x\nimage=app:1\n' >> "$DEPLOY_BROKER_OUTPUT"
exit 3
