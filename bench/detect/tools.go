package main

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"
)

// process is one synchroniser under measurement: the supervisor or lsyncd.
type process struct {
	name string
	cmd  *exec.Cmd
	logs *logBuffer
	done chan struct{}
	err  error
}

// logBuffer keeps a process's output so the bench can wait for a line.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func start(name string, cmd *exec.Cmd) (*process, error) {
	p := &process{name: name, cmd: cmd, logs: &logBuffer{}, done: make(chan struct{})}
	cmd.Stdout, cmd.Stderr = p.logs, p.logs
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("unable to start %s: %w", name, err)
	}
	go func() {
		p.err = cmd.Wait()
		close(p.done)
	}()
	return p, nil
}

// startSupervisor runs `supervisor run` on ws with a dir: mirror, the given
// flags and child command, and returns once its start-up scan is done.
func startSupervisor(o options, ws, mirror string, flags, env []string,
	child ...string) (*process, error) {
	args := append([]string{"run", "--workspace", ws, "--sync", "dir:" + mirror,
		"--listen", "", "--no-pty"}, flags...)
	args = append(append(args, "--"), child...)
	cmd := exec.Command(o.supervisor, args...)
	cmd.Env = append(os.Environ(), env...)
	p, err := start("supervisor", cmd)
	if err != nil {
		return nil, err
	}
	return p, p.waitLog("start-up scan done", 5*time.Minute)
}

// startLsyncd runs lsyncd with default.rsync from ws to mirror with no delay,
// and returns once its start-up rsync has finished.
func startLsyncd(ws, mirror, configDir string) (*process, error) {
	config := filepath.Join(configDir, "lsyncd.lua")
	text := fmt.Sprintf("settings { nodaemon = true }\n"+
		"sync { default.rsync, source = %q, target = %q, delay = 0 }\n", ws, mirror)
	if err := os.WriteFile(config, []byte(text), 0o644); err != nil {
		return nil, err
	}
	p, err := start("lsyncd", exec.Command("lsyncd", "-nodaemon", config))
	if err != nil {
		return nil, err
	}
	return p, p.waitLog(" finished.", 5*time.Minute)
}

// waitLog waits until the process has written text, or has exited.
func (p *process) waitLog(text string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for !strings.Contains(p.logs.String(), text) {
		select {
		case <-p.done:
			return fmt.Errorf("%s exited before logging %q: %v\n%s", p.name, text, p.err,
				p.logs.String())
		case <-time.After(time.Millisecond):
		}
		if time.Now().After(deadline) {
			p.kill()
			return fmt.Errorf("%s did not log %q within %v", p.name, text, timeout)
		}
	}
	return nil
}

// usage is what the kernel accounted to a finished process.
type usage struct {
	wall   time.Duration
	maxRSS int64 // bytes
}

// stop sends SIGTERM (unless the process is already ending by itself) and
// waits for the exit.
func (p *process) stop(term bool) (usage, error) {
	if term {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
	}
	return p.wait(2 * time.Minute)
}

func (p *process) wait(timeout time.Duration) (usage, error) {
	select {
	case <-p.done:
	case <-time.After(timeout):
		p.kill()
		return usage{}, fmt.Errorf("%s did not exit within %v", p.name, timeout)
	}
	var exit *exec.ExitError
	if p.err != nil && !errors.As(p.err, &exit) {
		return usage{}, p.err
	}
	u := usage{}
	if ru, ok := p.cmd.ProcessState.SysUsage().(*syscall.Rusage); ok {
		u.maxRSS = ru.Maxrss * 1024
	}
	return u, nil
}

func (p *process) kill() {
	_ = p.cmd.Process.Kill()
	<-p.done
}

// childrenCPU is the CPU time of every waited-for descendant so far: a
// tool's figure is the difference across its life, its own helpers
// (rsync, the supervised child) included.
func childrenCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_CHILDREN, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
