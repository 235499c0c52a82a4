// Command detect measures how fast file changes in a workspace reach a dir:
// mirror, through the supervisor and, side by side in the same run, through
// lsyncd (default.rsync, delay = 0), the established tool for the job.
//
// It runs each workload against fresh directories, prints one Markdown
// table of figures for BENCHMARKS.md, and leaves nothing behind. It owns
// the workloads and the measuring; it does not judge the figures against
// goals (BENCHMARKS.md does) and it never fails on a slow result.
//
// Latency is measured from the write to the file's arrival in the mirror:
// each written file carries the wall-clock time of its write, and an inotify
// watch on the mirror reads it back when the file is renamed into place
// (both tools write a temporary file and rename it).
package main

import (
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

type options struct {
	supervisor string        // the supervisor binary
	self       string        // this binary, run as the scripted agent child
	writes     int           // writes per latency workload
	interval   time.Duration // pause between latency writes
	burst      int           // files in the burst workload
	big        int           // files in the start-up workload
	lsyncd     bool          // run the lsyncd side too
	keep       bool          // keep the scratch directory
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "agent-child" {
		os.Exit(agentChild(os.Args[2:]))
	}
	var o options
	flag.StringVar(&o.supervisor, "supervisor", "bin/supervisor", "supervisor binary to measure")
	flag.IntVar(&o.writes, "writes", 200, "writes per latency workload")
	flag.DurationVar(&o.interval, "interval", 50*time.Millisecond,
		"pause between latency writes; longer than the debounce so writes do not merge")
	flag.IntVar(&o.burst, "burst", 10000, "files created by the one shell command of the burst (0 skips the burst)")
	flag.IntVar(&o.big, "big", 100000, "files in the workspace of the start-up workload (0 skips it)")
	flag.BoolVar(&o.lsyncd, "lsyncd", true, "also run every filesystem workload through lsyncd")
	flag.BoolVar(&o.keep, "keep", false, "keep the scratch directory for inspection")
	flag.Parse()

	if err := run(o); err != nil {
		fmt.Fprintln(os.Stderr, "detect:", err)
		os.Exit(1)
	}
}

func run(o options) error {
	var err error
	if o.supervisor, err = filepath.Abs(o.supervisor); err != nil {
		return err
	}
	if o.self, err = os.Executable(); err != nil {
		return fmt.Errorf("unable to find this binary: %w", err)
	}
	if o.lsyncd {
		for _, tool := range []string{"lsyncd", "rsync"} {
			if _, err := exec.LookPath(tool); err != nil {
				return fmt.Errorf("%s is not installed (apt-get install lsyncd rsync, "+
					"or -lsyncd=false): %w", tool, err)
			}
		}
	}
	scratch, err := os.MkdirTemp("", "bench-detect-")
	if err != nil {
		return err
	}
	if !o.keep {
		defer os.RemoveAll(scratch)
	}

	r := &report{}
	r.header(o)
	steps := []func(*report, options, string) error{
		benchAgentLatency, benchFSLatency, benchBurst, benchStartup,
	}
	for i, step := range steps {
		dir := filepath.Join(scratch, fmt.Sprint(i))
		if err := step(r, o, dir); err != nil {
			return err
		}
		_ = os.RemoveAll(dir)
	}
	r.print(os.Stdout)
	return nil
}
