// Package sync owns the path between a change hint and the backend: the
// change queue keyed by workspace path, the readiness policy (debounce,
// max-delay, settle), the drain workers that run at most one operation per
// path, the retry policy, the manifest of what the backend holds, the
// reconciling scans, and the backends themselves behind one interface.
//
// It does not find changes (the agent decoder and the watcher do, and send
// change.Hint values to Queue.Notify), it does not decide which paths are
// never synced (change.Filter does), and it does not serve /status or the
// metrics (package metrics does; Queue.Status returns the document).
//
// The queue trusts the disk, never the hint: a hint only says "look at this
// path". When the path's turn comes, the operation reads what is there now
// and compares it with the manifest, so a hint that is late, duplicated or
// wrong costs a stat and a hash, never a lost or wrong file.
package sync
