#!/bin/sh
# trap.sh SIGNAL: print "got SIGNAL" and exit 0 when SIGNAL arrives.
# "ready" says the trap is in place.
trap "echo got $1; exit 0" "$1"
echo ready
while :; do sleep 0.05; done
