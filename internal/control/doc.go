// Package control is the daemon side and the client side of the control
// API that `supervisor serve` offers and `supervisor submit` uses: start a
// run, read its state, stream its events, signal or stop it.
//
// It owns the HTTP surface (routes, wire types, authentication of unix
// socket peers and TCP bearer tokens), the run registry that admits one run
// at a time, and the bounded, resumable event buffer behind each run's
// server-sent-event stream. It does not know how a run is carried out:
// the Starter given to the Server builds the workspace, sync queue, watcher
// and child, and reports back through the Run it is handed. It never reads
// the agent's output beyond splitting it into lines.
//
// docs/control-api.md is the reference for the wire format.
package control
