#!/bin/sh
# orphan-burst.sh N CODE: leave N orphans behind that exit within a few
# milliseconds of each other, wait until each has exited (a zombie or
# gone: reaping it is the supervisor's job), then exit with CODE at once.
# Run under a supervisor that is PID 1 of a fresh PID namespace with its
# own /proc.
i=0
while [ "$i" -lt "$1" ]; do
	# The subshell exits at once, so the orphan is reparented to PID 1.
	( sleep 0.2 & )
	i=$((i + 1))
done

# Count processes still alive besides PID 1 and this shell; the scan uses
# builtins only, so it starts none itself.
while :; do
	sleep 0.02
	alive=0
	for stat in /proc/[0-9]*/stat; do
		read -r pid _ state _ <"$stat" 2>/dev/null || continue
		[ "$pid" = 1 ] || [ "$pid" = $$ ] || [ "$state" = Z ] || alive=$((alive + 1))
	done
	[ "$alive" -eq 0 ] && break
done
exit "$2"
