// Command supervisor runs a coding agent as a container's PID 1: it starts
// the agent under a pty, passes its output through, turns the agent's tool
// events and inotify events into one change queue, syncs that queue to a
// backend, and serves Prometheus metrics and health probes.
//
// This file only dispatches subcommands; run.go wires the supervisor itself.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// Exit statuses of the supervisor's own making. Every other status of `run`
// is the child's (DESIGN.md section 3).
const (
	exitUsage = 2
)

// errUsage marks errors in the command line; they exit with status 2.
var errUsage = errors.New("usage error")

func main() {
	applyDefaultMemoryLimit()
	os.Exit(dispatch(os.Args[1:], os.Stdout, os.Stderr))
}

func dispatch(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 {
		printUsage(stderr)
		return exitUsage
	}
	switch args[0] {
	case "run":
		return runCommand(args[1:], stderr)
	case "serve":
		return serveCommand(args[1:], stderr)
	case "submit":
		return submitCommand(args[1:], stdout, stderr)
	case "health":
		return healthCommand(args[1:], stdout, stderr)
	case "version", "--version", "-version":
		_, _ = fmt.Fprintf(stdout, "supervisor %s\n", version)
		return 0
	case "help", "--help", "-h", "-help":
		printUsage(stdout)
		return 0
	}
	_, _ = fmt.Fprintf(stderr, "supervisor: unknown command %q\n\n", args[0])
	printUsage(stderr)
	return exitUsage
}

func printUsage(w io.Writer) {
	_, _ = fmt.Fprint(w, `usage:
  supervisor run [flags] -- COMMAND [ARG...]   supervise one command, exit with its status
  supervisor serve [flags]                     wait for runs over the control API
  supervisor submit [flags] -- COMMAND [ARG...]  start a run in serve, print its output,
                                               exit with its status
  supervisor health [--listen ADDR]            exit 0 when the supervisor at ADDR is ready
  supervisor version

Run "supervisor run --help" for the flags of run. Each flag can also be set
with SUPERVISOR_<NAME> in the environment (--state-dir -> SUPERVISOR_STATE_DIR);
a flag on the command line wins.
`)
}
