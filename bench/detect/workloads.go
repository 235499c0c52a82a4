package main

import (
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"time"
)

// setup makes ws and mirror with the named subdirectory in both, so that
// the mirror can be watched before the first file arrives.
func setup(dir, sub string) (ws, mirror string, err error) {
	ws, mirror = filepath.Join(dir, "ws"), filepath.Join(dir, "mirror")
	for _, d := range []string{filepath.Join(ws, sub), filepath.Join(mirror, sub)} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return "", "", err
		}
	}
	return ws, mirror, nil
}

// benchAgentLatency: files written by a scripted agent's Write tool, timed
// from the write to the mirror.
func benchAgentLatency(r *report, o options, dir string) error {
	ws, mirror, err := setup(dir, "agent")
	if err != nil {
		return err
	}
	a, err := watchArrivals(filepath.Join(mirror, "agent"))
	if err != nil {
		return err
	}
	cpu := childrenCPU()
	p, err := startSupervisor(o, ws, mirror, nil, nil, o.self, "agent-child",
		"-dir", filepath.Join(ws, "agent"), "-n", strconv.Itoa(o.writes),
		"-interval", o.interval.String())
	if err != nil {
		a.close()
		return err
	}
	lat := a.wait(o.writes, time.Duration(o.writes)*o.interval+time.Minute)
	u, err := p.wait(time.Minute)
	if err != nil {
		return err
	}
	r.latency("agent-confirmed write", "supervisor (--debounce 20ms)", lat, u, childrenCPU()-cpu)
	return nil
}

// benchFSLatency: files written by an ordinary process, seen only by
// inotify, through the supervisor at two debounces and through lsyncd.
func benchFSLatency(r *report, o options, dir string) error {
	for i, tool := range fsTools(o, false) {
		ws, mirror, err := setup(filepath.Join(dir, strconv.Itoa(i)), "fs")
		if err != nil {
			return err
		}
		cpu := childrenCPU()
		p, err := tool.start(ws, mirror, dir)
		if err != nil {
			return err
		}
		a, err := watchArrivals(filepath.Join(mirror, "fs"))
		if err != nil {
			p.kill()
			return err
		}
		for n := range o.writes {
			if err := writeStamped(filepath.Join(ws, "fs", fmt.Sprintf("f%d", n))); err != nil {
				p.kill()
				return err
			}
			time.Sleep(o.interval)
		}
		lat := a.wait(o.writes, time.Minute)
		u, err := p.stop(true)
		if err != nil {
			return err
		}
		r.latency("filesystem-only write", tool.name, lat, u, childrenCPU()-cpu)
	}
	return nil
}

// fsTool is one way of running a synchroniser on a workspace.
type fsTool struct {
	name  string
	start func(ws, mirror, scratch string) (*process, error)
}

// fsTools lists the synchronisers a filesystem workload runs through; the
// burst also tries the supervisor with more operations in flight.
func fsTools(o options, burst bool) []fsTool {
	supervisor := func(flags ...string) func(ws, mirror, scratch string) (*process, error) {
		return func(ws, mirror, _ string) (*process, error) {
			return startSupervisor(o, ws, mirror, flags, nil, "sleep", "3600")
		}
	}
	tools := []fsTool{
		{"supervisor (--debounce 20ms)", supervisor("--debounce", "20ms")},
		{"supervisor (--debounce 0)", supervisor("--debounce", "0s")},
	}
	if burst {
		tools = append(tools, fsTool{"supervisor (--debounce 0, --sync-concurrency 32)",
			supervisor("--debounce", "0s", "--sync-concurrency", "32")})
	}
	if o.lsyncd {
		tools = append(tools, fsTool{"lsyncd (default.rsync, delay 0)",
			func(ws, mirror, scratch string) (*process, error) {
				return startLsyncd(ws, mirror, filepath.Dir(ws))
			}})
	}
	return tools
}

// burstScript creates $N files in burst/ in one shell process.
const burstScript = `i=0; while [ $i -lt "$N" ]; do echo "$i" > burst/f$i; i=$((i+1)); done`

// benchBurst: one shell command creates many files; timed until the last
// of them is in the mirror.
func benchBurst(r *report, o options, dir string) error {
	if o.burst == 0 {
		return nil
	}
	for i, tool := range fsTools(o, true) {
		ws, mirror, err := setup(filepath.Join(dir, strconv.Itoa(i)), "burst")
		if err != nil {
			return err
		}
		cpu := childrenCPU()
		p, err := tool.start(ws, mirror, dir)
		if err != nil {
			return err
		}
		sh := exec.Command("/bin/sh", "-c", burstScript)
		sh.Dir, sh.Env = ws, append(os.Environ(), "N="+strconv.Itoa(o.burst))
		began := time.Now()
		if err := sh.Run(); err != nil {
			p.kill()
			return fmt.Errorf("burst shell: %w", err)
		}
		lastWrite := time.Now()
		mirrored, err := waitCount(filepath.Join(mirror, "burst"), o.burst, 5*time.Minute)
		if err != nil {
			p.kill()
			return err
		}
		u, err := p.stop(true)
		if err != nil {
			return err
		}
		shCPU := sh.ProcessState.UserTime() + sh.ProcessState.SystemTime()
		r.burst(tool.name, lastWrite.Sub(began), mirrored.Sub(lastWrite), u,
			childrenCPU()-cpu-shCPU)
	}
	return nil
}

var scanDone = regexp.MustCompile(`start-up scan done.*duration_ms=(\d+)`)

// benchStartup: a workspace of many files, mirrored from nothing, then
// started again with everything synced.
func benchStartup(r *report, o options, dir string) error {
	if o.big == 0 {
		return nil
	}
	ws, mirror, err := setup(dir, "")
	if err != nil {
		return err
	}
	began := time.Now()
	if err := makeTree(ws, o.big); err != nil {
		return err
	}
	r.note(fmt.Sprintf("Start-up workspace: %d files of at most 6 bytes in %d directories, "+
		"created in %v.", o.big, (o.big+99)/100, time.Since(began).Round(time.Millisecond)))

	runs := []struct {
		what       string
		fresh      bool // start from an empty mirror and state directory
		flags, env []string
	}{
		{what: "first start: empty manifest, mirrors everything, exits", fresh: true},
		{what: "second start: manifest complete, nothing to send, exits"},
		{what: "first start with --sync-concurrency 32 and GOMEMLIMIT=40MiB", fresh: true,
			flags: []string{"--sync-concurrency", "32"}, env: []string{"GOMEMLIMIT=40MiB"}},
	}
	for _, run := range runs {
		if run.fresh {
			for _, d := range []string{mirror, filepath.Join(ws, ".supervisor")} {
				if err := os.RemoveAll(d); err != nil {
					return err
				}
			}
		}
		// The first start sends every file; the default flush timeout
		// would cut that short.
		flags := append([]string{"--flush-timeout", "1h"}, run.flags...)
		began := time.Now()
		p, err := startSupervisor(o, ws, mirror, flags, run.env, "true")
		if err != nil {
			return err
		}
		ready := time.Since(began)
		u, err := p.wait(time.Hour)
		if err != nil {
			return err
		}
		u.wall = time.Since(began)
		scan := time.Duration(-1)
		if m := scanDone.FindStringSubmatch(p.logs.String()); m != nil {
			ms, _ := strconv.Atoi(m[1])
			scan = time.Duration(ms) * time.Millisecond
		}
		if got := countTree(mirror); got != o.big {
			return fmt.Errorf("after %q the mirror holds %d of %d files", run.what, got, o.big)
		}
		r.startup("supervisor, "+run.what, scan, ready, u)
	}

	if o.lsyncd {
		lmirror := filepath.Join(dir, "lsyncd-mirror")
		began := time.Now()
		p, err := startLsyncd(ws, lmirror, dir)
		if err != nil {
			return err
		}
		ready := time.Since(began)
		u, err := p.stop(true)
		if err != nil {
			return err
		}
		u.wall = ready
		r.startup("lsyncd, start-up rsync of the whole tree", -1, ready, u)
	}
	return nil
}

// countTree counts the regular files beneath root.
func countTree(root string) int {
	n := 0
	_ = filepath.WalkDir(root, func(_ string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			n++
		}
		return nil
	})
	return n
}

// makeTree fills ws with n small files, 100 per directory.
func makeTree(ws string, n int) error {
	for i := range n {
		d := filepath.Join(ws, fmt.Sprintf("d%04d", i/100))
		if i%100 == 0 {
			if err := os.MkdirAll(d, 0o755); err != nil {
				return err
			}
		}
		if err := os.WriteFile(filepath.Join(d, fmt.Sprintf("f%d", i)),
			[]byte(strconv.Itoa(i)+"\n"), 0o644); err != nil {
			return err
		}
	}
	return nil
}
