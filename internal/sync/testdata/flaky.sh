#!/bin/sh
# flaky.sh STATE PATH
#
# An upload command for exec_test.go that fails its first two calls, as an
# upload CLI does when its server is away. STATE counts the calls.
n=$(cat "$1" 2>/dev/null || echo 0)
n=$((n + 1))
echo "$n" > "$1"
echo "uploading $2, attempt $n"
if [ "$n" -le 2 ]; then
	echo "upload failed: server said no" >&2
	exit 3
fi
