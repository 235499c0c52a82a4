#!/usr/bin/env bash
# Container entry point: prepare the workspace, then replace this shell with
# the supervisor so that it runs as PID 1 and receives the container's
# signals. The arguments are the command to supervise; settings come from
# SUPERVISOR_* variables (see `supervisor run --help`).
set -euo pipefail

workspace="${SUPERVISOR_WORKSPACE:-$HOME/workspace}"
state_dir="${SUPERVISOR_STATE_DIR:-$HOME/.supervisor}"
export SUPERVISOR_WORKSPACE="$workspace" SUPERVISOR_STATE_DIR="$state_dir"

if [ "$#" -eq 0 ]; then
  echo "supervisor-init: no command given; pass the agent command as arguments," >&2
  echo "  for example: claude -p 'fix the tests' --output-format stream-json --verbose" >&2
  exit 2
fi

# The workspace and state directory must exist before the watcher starts;
# a mounted volume may bring them, a fresh container does not.
if ! mkdir -p "$workspace" "$state_dir"; then
  echo "supervisor-init: unable to create $workspace or $state_dir as uid $(id -u);" \
    "mount them writable for this user" >&2
  exit 1
fi

# A dir: mirror target inside the container must exist too.
case "${SUPERVISOR_SYNC:-}" in
  dir:*) mkdir -p "${SUPERVISOR_SYNC#dir:}" ;;
esac

cd "$workspace"
exec supervisor run -- "$@"
