#!/bin/sh
# Lacks the execute bit on purpose: starting it must fail with 126.
echo "this must not run"
