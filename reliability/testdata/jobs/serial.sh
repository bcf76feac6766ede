#!/bin/sh
# serial.sh TAG: marks when it starts and ends (nanoseconds), for the
# concurrency test that checks runs of a concurrency-1 job never overlap.
echo "START $1 $(date +%s%N)"
sleep 0.2
echo "END $1 $(date +%s%N)"
