#!/bin/sh
# hanging-agent.sh WHEN [OUTCOME] [TERM]: a fake agent printing stream-json
# that hangs. WHEN is "before" (silent after its init line, never printing
# a result) or "after" (hangs after its result line, as the Claude CLI is
# known to). OUTCOME is "success" or "error". TERM set to "ignore-term"
# makes it ignore SIGTERM, so only SIGKILL after --grace ends it.
[ "$3" = ignore-term ] && trap '' TERM
echo '{"type":"system","subtype":"init","session_id":"s1","cwd":"'"$PWD"'","model":"m"}'
if [ "$1" = after ]; then
	is_error=false
	[ "$2" = error ] && is_error=true
	echo '{"type":"result","subtype":"success","is_error":'"$is_error"',"num_turns":1}'
fi
while :; do sleep 0.05; done
