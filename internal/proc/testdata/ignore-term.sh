#!/bin/sh
# Ignores SIGTERM (sleep inherits that), so only SIGKILL ends it.
trap '' TERM
echo ready
while :; do sleep 0.05; done
