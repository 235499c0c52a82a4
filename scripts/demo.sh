#!/usr/bin/env bash
# Runs the main job with no account and no API key: the real Claude Code CLI
# under the supervisor, talking to the scripted stand-in for the Messages API
# (bin/fakeapi, which embeds a short demo session). The agent writes files
# into a fresh workspace and the supervisor mirrors them into a directory
# while it works. Run it through `make demo`, which builds what it needs.
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
claude="${CLAUDE_BIN:-$root/.tools/claude/node_modules/.bin/claude}"
work="$(mktemp -d "${TMPDIR:-/tmp}/supervisor-demo.XXXXXX")"
mkdir -p "$work/workspace" "$work/home"

# The scripted Messages API prints its base URL as its first line.
"$root/bin/fakeapi" -workspace "$work/workspace" >"$work/fakeapi.url" 2>"$work/fakeapi.log" &
api_pid=$!
trap 'kill "$api_pid" 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  [ -s "$work/fakeapi.url" ] && break
  sleep 0.05
done
base_url="$(head -n 1 "$work/fakeapi.url")"
if [ -z "$base_url" ]; then
  echo "demo: the scripted API did not start; see $work/fakeapi.log" >&2
  exit 1
fi

echo "demo: workspace $work/workspace, mirror $work/mirror" >&2
status=0
(
  cd "$work/workspace"
  # IS_SANDBOX lets --dangerously-skip-permissions run as root; the other
  # variables keep the CLI from calling anything but the scripted API.
  env HOME="$work/home" IS_SANDBOX=1 DISABLE_TELEMETRY=1 \
    CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1 DISABLE_AUTOUPDATER=1 \
    ANTHROPIC_BASE_URL="$base_url" ANTHROPIC_API_KEY=demo-key-not-secret \
    "$root/bin/supervisor" run --sync "dir:$work/mirror" --listen 127.0.0.1:0 -- \
    "$claude" -p "Show what the supervisor does" \
    --output-format stream-json --verbose --dangerously-skip-permissions
) >"$work/stdout.jsonl" || status=$?

echo
echo "demo: the CLI exited with status $status; its stream-json output is in $work/stdout.jsonl"
echo "demo: $(wc -l <"$work/stdout.jsonl") lines on stdout; the result line begins:"
grep '"type":"result"' "$work/stdout.jsonl" | cut -c 1-300
echo "demo: files in the mirror:"
(cd "$work/mirror" && find . -type f | sort | sed 's/^/  /')
if diff -r --exclude=.supervisor "$work/workspace" "$work/mirror" >/dev/null; then
  echo "demo: the mirror equals the workspace"
else
  echo "demo: the mirror differs from the workspace:" >&2
  diff -r --exclude=.supervisor "$work/workspace" "$work/mirror" >&2 || true
  exit 1
fi
echo "demo: everything is in $work; remove it when done"
exit "$status"
