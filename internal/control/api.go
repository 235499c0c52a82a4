package control

import (
	"errors"
	"time"
)

// APIVersion prefixes every route; a change that breaks clients gets a new
// prefix while the old one keeps working.
const APIVersion = "v1"

// Sentinel errors a Starter returns and the server maps to HTTP statuses;
// the client returns them for the same statuses.
var (
	// ErrInvalid is a run request that cannot work (bad option, missing
	// sync target, a workspace that does not exist): 400.
	ErrInvalid = errors.New("invalid run request")
	// ErrBusy is a start while another run is under way: 409.
	ErrBusy = errors.New("another run is in progress")
	// ErrNotFound is a run ID the daemon does not know (never started, or
	// forgotten among older runs): 404.
	ErrNotFound = errors.New("no such run")
	// ErrUnauthorized is a TCP request without the right bearer token: 401.
	ErrUnauthorized = errors.New("unauthorized")
	// ErrFinished is a signal for a run that has already ended: 409.
	ErrFinished = errors.New("run has finished")
)

// StartRequest is the body of POST /v1/runs.
type StartRequest struct {
	// Argv is the command and its arguments. Required.
	Argv []string `json:"argv"`
	// Env is added to the daemon's environment for the child (the
	// daemon's SUPERVISOR_ variables are never passed on). Values are
	// never logged or returned.
	Env map[string]string `json:"env,omitempty"`
	// Dir is the child's working directory. Empty means the workspace.
	Dir string `json:"dir,omitempty"`
	// Workspace is the tree to watch and sync. Empty means the daemon's
	// SUPERVISOR_WORKSPACE, else Dir, else the daemon's directory.
	Workspace string `json:"workspace,omitempty"`
	// Sync is the sync target, as `supervisor run --sync`. Empty means
	// the daemon's SUPERVISOR_SYNC.
	Sync string `json:"sync,omitempty"`
	// SyncToken is the backend's bearer token. Empty means the daemon's
	// own, if any. Never logged or returned.
	SyncToken string `json:"sync_token,omitempty"`
	// Options are further flags of `supervisor run`, one per element in
	// the form "--name=value" ("--idle-timeout=10m", "--ignore=*.log").
	Options []string `json:"options,omitempty"`
}

// Run states.
const (
	StateStarting = "starting" // building the run; the child has not started
	StateRunning  = "running"  // the child runs, or its last changes are flushed
	StateExited   = "exited"   // over; ExitCode is set
)

// RunInfo is what GET /v1/runs/{id} returns.
type RunInfo struct {
	ID    string `json:"id"`
	State string `json:"state"`
	// Command is the base name of Argv[0]; the arguments (a prompt) are
	// not repeated.
	Command   string     `json:"command"`
	CreatedAt time.Time  `json:"created_at"`
	EndedAt   *time.Time `json:"ended_at,omitempty"`
	ExitCode  *int       `json:"exit_code,omitempty"`
	// Ready and NotReady are the run's own readiness: the watcher is set
	// up, the start-up scan is done and the backend is usable.
	Ready    bool   `json:"ready"`
	NotReady string `json:"not_ready_reason,omitempty"`
	// LastEventID is the ID of the newest event so far.
	LastEventID uint64 `json:"last_event_id"`
	// Detail is the run's /status document (child, agent session, queue,
	// watcher) while the daemon still holds the run.
	Detail any `json:"detail,omitempty"`
}

// SignalRequest is the body of POST /v1/runs/{id}/signal.
type SignalRequest struct {
	// Signal is a name: SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2
	// (the "SIG" may be left out).
	Signal string `json:"signal"`
}

// ErrorBody is the body of every error response.
type ErrorBody struct {
	// Error is a fixed code: invalid, busy, not_found, unauthorized,
	// finished, internal.
	Error   string `json:"error"`
	Message string `json:"message"`
	// RunID names the run in progress, for busy.
	RunID string `json:"run_id,omitempty"`
}

// Ping is what GET /v1/ping returns.
type Ping struct {
	Version string `json:"version"`
	// Busy names the run in progress, if any.
	Busy string `json:"busy,omitempty"`
}
