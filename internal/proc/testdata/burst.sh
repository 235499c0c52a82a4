#!/bin/sh
# burst.sh CODE GATE: leave 10 orphans behind that wait for GATE (a file)
# to appear and then exit, wait for GATE too, and exit with CODE.
# Everything started with the same GATE ends at about the same moment. The
# orphans are started from a subshell that exits at once, so they are
# reparented to the nearest subreaper right away.
i=0
while [ "$i" -lt 10 ]; do
	( (while [ ! -e "$2" ]; do sleep 0.005; done) & )
	i=$((i + 1))
done
while [ ! -e "$2" ]; do sleep 0.005; done
exit "$1"
