#!/bin/sh
# orphans.sh CODE: leave 20 background processes behind, then exit with CODE
# at once. The processes outlive this shell and are reparented to the
# nearest subreaper, which must reap them without mixing up CODE.
i=0
while [ "$i" -lt 20 ]; do
	sleep 0.1 &
	i=$((i + 1))
done
exit "$1"
