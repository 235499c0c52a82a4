#!/bin/sh
# record.sh CALLS MIRROR OP PATH ABS
#
# An upload command for exec_test.go. It records the arguments it was given
# after CALLS and MIRROR (their count first, NUL-separated) in a new file
# under CALLS, then applies the operation to MIRROR, reading a put's content
# from standard input.
calls=$1 mirror=$2
shift 2
record=$(mktemp "$calls/call.XXXXXX") || exit 1
printf '%s\0' "$#" "$@" > "$record"
case $1 in
put)
	mkdir -p -- "$(dirname -- "$mirror/$2")" && cat > "$mirror/$2"
	;;
delete)
	rm -f -- "$mirror/$2"
	;;
*)
	echo "unknown operation $1" >&2
	exit 2
	;;
esac
