// Package proc owns the processes the supervisor starts: the supervised
// command under a pseudo-terminal (or pipes), its output, the signals
// forwarded to its process group, and the single reaper that collects the
// exit status of every process in the table, orphans included.
//
// The Reaper is the only code in the supervisor that calls wait. Everything
// that starts a process, the supervised child and the exec sync backend
// alike, goes through Reaper.Start, which hands back a channel that receives
// that process's Status. Nothing in the supervisor may use os/exec's
// Cmd.Wait or os.Process.Wait: with a reaper waiting on every pid, their
// status would be stolen, and they would steal the reaper's in turn.
//
// The package does not parse the child's output (the agent package frames
// and decodes it from the io.Writer it is given), does not decide the
// supervisor's exit status (main does, from Status.ExitCode), and does not
// install process-wide signal handlers beyond SIGCHLD for the reaper,
// SIGWINCH and FatalSignals while a terminal is attached, and what
// NotifySignals sets up at main's request.
//
// A terminal put in raw mode is restored on every way out the package can
// see: the child's exit, a panic in a goroutine that defers RestoreOnPanic
// (main defers it in each goroutine it starts), and FatalSignals.
package proc
