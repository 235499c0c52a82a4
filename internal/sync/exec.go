package sync

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	stdsync "sync"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agent-supervisor/supervisor/internal/change"
	"github.com/agent-supervisor/supervisor/internal/proc"
)

// Starter starts a process and hands back its exit status; the supervisor's
// *proc.Reaper is the one implementation outside tests. The exec backend
// never waits on a process itself (see package proc).
type Starter interface {
	Start(cmd proc.Command) (pid int, done <-chan proc.Status, err error)
}

// Placeholders of an exec template. Each is replaced inside the argument
// that holds it; the value never becomes more than that one argument.
const (
	placeholderOp   = "{op}"   // "put" or "delete"
	placeholderPath = "{path}" // the workspace-relative slash path
	placeholderAbs  = "{abs}"  // the file's absolute path in the workspace
)

// outputTail bounds how much of a failed command's stderr goes into the
// error, and so into /status.
const outputTail = 512

// outputDrain bounds how long the backend keeps reading a command's output
// after it exited: a background process it left behind may hold the pipe.
const outputDrain = time.Second

// ExecBackend runs one command per operation, for example an existing
// upload CLI. The template is split into arguments once, at start; the
// placeholders are then replaced inside their arguments, so no file name
// can add, split or quote an argument, and no shell ever reads one. A put
// also gets the file's content on standard input.
//
// Exit status 0 is success; anything else, a timeout included, is retried
// by the queue with backoff. The command runs in the workspace with the
// supervisor's environment less its SUPERVISOR_ settings, plus
// SUPERVISOR_SYNC_TOKEN when a token is set.
type ExecBackend struct {
	argv    []string
	ws      *change.Workspace
	starter Starter
	env     []string
	timeout time.Duration
	log     hclog.Logger
}

// NewExecBackend returns a backend that runs template. The command must be
// executable now; ws and starter are required.
func NewExecBackend(template string, opts TargetOptions) (*ExecBackend, error) {
	if opts.Workspace == nil || opts.Starter == nil {
		return nil, errors.New("the exec backend needs the workspace and the process reaper")
	}
	argv, err := splitTemplate(template)
	if err != nil {
		return nil, err
	}
	if strings.Contains(argv[0], "{") {
		return nil, errors.New("the command itself must not be a placeholder")
	}
	if _, err := proc.LookPath(argv[0], nil); err != nil {
		return nil, fmt.Errorf("unable to find the sync command: %w", err)
	}
	return &ExecBackend{
		argv:    argv,
		ws:      opts.Workspace,
		starter: opts.Starter,
		env:     execEnv(os.Environ(), opts.Token),
		timeout: opts.timeout(),
		log:     opts.logger(),
	}, nil
}

func parseExecTarget(rest string, opts TargetOptions) (Backend, error) {
	return NewExecBackend(rest, opts)
}

// splitTemplate splits a template into arguments at unquoted blanks. Single
// and double quotes group text with blanks into one argument and are
// removed; nothing else is special (no escapes, no variables, no globs).
func splitTemplate(template string) ([]string, error) {
	var (
		argv    []string
		arg     strings.Builder
		inArg   bool
		quoting rune
	)
	for _, c := range template {
		switch {
		case quoting != 0 && c == quoting:
			quoting = 0
		case quoting != 0:
			arg.WriteRune(c)
		case c == '\'' || c == '"':
			quoting, inArg = c, true
		case c == ' ' || c == '\t' || c == '\n':
			if inArg {
				argv = append(argv, arg.String())
				arg.Reset()
				inArg = false
			}
		default:
			arg.WriteRune(c)
			inArg = true
		}
	}
	if quoting != 0 {
		return nil, fmt.Errorf("unterminated %c quote in the exec template", quoting)
	}
	if inArg {
		argv = append(argv, arg.String())
	}
	if len(argv) == 0 {
		return nil, errors.New("empty exec template; give a command, for example " +
			"exec:upload {op} {path}")
	}
	return argv, checkPlaceholders(argv)
}

// checkPlaceholders rejects a template that names no file, or that holds a
// brace word the backend would pass on literally by mistake.
func checkPlaceholders(argv []string) error {
	names := false
	for _, a := range argv {
		rest := a
		for {
			open := strings.IndexByte(rest, '{')
			if open < 0 {
				break
			}
			end := strings.IndexByte(rest[open:], '}')
			if end < 0 {
				break
			}
			word := rest[open : open+end+1]
			switch word {
			case placeholderPath, placeholderAbs:
				names = true
			case placeholderOp:
			default:
				return fmt.Errorf("unknown placeholder %s in the exec template; "+
					"use {op}, {path} or {abs}", word)
			}
			rest = rest[open+end+1:]
		}
	}
	if !names {
		return errors.New("the exec template names no file; use {path} or {abs}")
	}
	return nil
}

// execEnv is env less the supervisor's own settings, plus the token the
// command may need to authenticate.
func execEnv(env []string, token string) []string {
	out := make([]string, 0, len(env)+1)
	for _, kv := range env {
		if !strings.HasPrefix(kv, "SUPERVISOR_") {
			out = append(out, kv)
		}
	}
	if token != "" {
		out = append(out, "SUPERVISOR_SYNC_TOKEN="+token)
	}
	return out
}

// Argv returns the command line for one operation.
func (e *ExecBackend) Argv(op, path string) []string {
	r := strings.NewReplacer(placeholderOp, op, placeholderPath, path,
		placeholderAbs, e.ws.Abs(path))
	argv := make([]string, len(e.argv))
	for i, a := range e.argv {
		argv[i] = r.Replace(a)
	}
	return argv
}

// Put implements Backend.
func (e *ExecBackend) Put(ctx context.Context, path string, content io.Reader, _ int64,
	_ fs.FileMode) error {
	return e.run(ctx, "put", path, content)
}

// Delete implements Backend.
func (e *ExecBackend) Delete(ctx context.Context, path string) error {
	return e.run(ctx, "delete", path, nil)
}

// Check implements Backend: the command must still be executable.
func (e *ExecBackend) Check(context.Context) error {
	if _, err := proc.LookPath(e.argv[0], e.env); err != nil {
		return fmt.Errorf("the sync command is not usable: %w", err)
	}
	return nil
}

// run runs the command for one operation and waits for it through the
// reaper, killing its process group when the timeout ends first.
func (e *ExecBackend) run(ctx context.Context, op, path string, stdin io.Reader) error {
	ctx, cancel := context.WithTimeout(ctx, e.timeout)
	defer cancel()
	argv := e.Argv(op, path)
	log := e.log.With("op", op, "path", path)

	p, err := e.start(argv, stdin != nil)
	if err != nil {
		return fmt.Errorf("unable to %s %q: %w", op, path, err)
	}
	defer p.closeAll()

	// The content goes in while the output comes out, so neither pipe can
	// fill up and stall the command.
	fed := make(chan error, 1)
	if stdin != nil {
		go func() { fed <- p.feed(stdin) }()
	} else {
		fed <- nil
	}
	output := p.readOutput(log)

	var status proc.Status
	select {
	case status = <-p.done:
	case <-ctx.Done():
		select {
		case status = <-p.done:
			// Reaped just now: its pid may already belong to another
			// process, so it must not be signalled.
		default:
			// The command is the leader of its own process group; the
			// whole group goes, so that an upload it forked does not
			// linger. A zombie keeps its group id, so this is safe until
			// the reaper waits; between that wait and the status arriving
			// here (a few instructions) a new group leader could take
			// the id. Closing that gap needs a pidfd from the reaper.
			_ = syscall.Kill(-p.pid, syscall.SIGKILL)
			status = <-p.done
		}
	}
	if p.stdin != nil {
		// A process the command left behind may hold standard input
		// without reading it; closing our end ends the feed.
		_ = p.stdin.Close()
	}
	tail := p.finishOutput(output)
	feedErr := <-fed

	switch {
	case ctx.Err() != nil:
		return fmt.Errorf("unable to %s %q: %s did not finish within %s: %w",
			op, path, argv[0], e.timeout, ctx.Err())
	case status.ExitCode() != 0:
		err := fmt.Errorf("unable to %s %q: %s: %s", op, path, argv[0], status)
		if tail != "" {
			err = fmt.Errorf("%w: %q", err, tail)
		}
		return err
	case feedErr != nil:
		return fmt.Errorf("unable to %s %q: %w", op, path, feedErr)
	}
	return nil
}

// process is one running command and the supervisor's ends of its pipes.
type process struct {
	pid            int
	done           <-chan proc.Status
	stdin          *os.File // nil when the command reads /dev/null
	stdout, stderr *os.File
}

// start creates the pipes and starts argv through the reaper. The child's
// ends are closed here once it has them.
func (e *ExecBackend) start(argv []string, withStdin bool) (*process, error) {
	p := &process{}
	var childEnds []*os.File
	defer func() {
		for _, f := range childEnds {
			_ = f.Close()
		}
	}()
	pipe := func() (r, w *os.File, err error) {
		r, w, err = os.Pipe()
		if err != nil {
			return nil, nil, fmt.Errorf("unable to create a pipe: %w", err)
		}
		return r, w, nil
	}

	cmd := proc.Command{Argv: argv, Env: e.env, Dir: e.ws.Root()}
	var err error
	if withStdin {
		if cmd.Stdin, p.stdin, err = pipe(); err != nil {
			return nil, err
		}
		childEnds = append(childEnds, cmd.Stdin)
	}
	if p.stdout, cmd.Stdout, err = pipe(); err != nil {
		p.closeAll()
		return nil, err
	}
	childEnds = append(childEnds, cmd.Stdout)
	if p.stderr, cmd.Stderr, err = pipe(); err != nil {
		p.closeAll()
		return nil, err
	}
	childEnds = append(childEnds, cmd.Stderr)

	if p.pid, p.done, err = e.starter.Start(cmd); err != nil {
		p.closeAll()
		return nil, err
	}
	return p, nil
}

func (p *process) closeAll() {
	for _, f := range []*os.File{p.stdin, p.stdout, p.stderr} {
		if f != nil {
			_ = f.Close()
		}
	}
}

// feed copies content to the command's standard input. A command that
// does not read it (it reads {abs} instead) closes the pipe early; the rest
// is then read and discarded, because the queue records the hash of what
// was read and must see the whole file. Only a failure to read the file is
// returned.
func (p *process) feed(content io.Reader) error {
	src := &readErrorCatcher{r: content}
	_, err := io.Copy(p.stdin, src)
	_ = p.stdin.Close()
	if err != nil && src.err == nil {
		_, _ = io.Copy(io.Discard, src)
	}
	return src.err
}

// readErrorCatcher remembers the error its reader returned, so that a copy
// can tell a failed read from a failed write.
type readErrorCatcher struct {
	r   io.Reader
	err error
}

func (c *readErrorCatcher) Read(b []byte) (int, error) {
	n, err := c.r.Read(b)
	if err != nil && err != io.EOF {
		c.err = err
	}
	return n, err
}

// commandOutput is the reading of a command's stdout and stderr.
type commandOutput struct {
	wg   stdsync.WaitGroup
	mu   stdsync.Mutex
	tail string // the end of stderr, for the error of a failed command
}

// readOutput logs every line the command writes, at debug level under the
// backend's logger, and keeps the end of stderr.
func (p *process) readOutput(log hclog.Logger) *commandOutput {
	out := &commandOutput{}
	read := func(stream string, f *os.File) {
		defer out.wg.Done()
		scanner := bufio.NewScanner(f)
		scanner.Buffer(make([]byte, 4096), 64<<10)
		for scanner.Scan() {
			line := scanner.Text()
			log.Debug("command output", "stream", stream, "line", line)
			if stream == "stderr" {
				out.mu.Lock()
				out.tail = lastBytes(out.tail+line+"\n", outputTail)
				out.mu.Unlock()
			}
		}
	}
	out.wg.Add(2)
	go read("stdout", p.stdout)
	go read("stderr", p.stderr)
	return out
}

// finishOutput waits a moment for the output readers to reach the end of
// the pipes, then closes them, and returns the end of stderr.
func (p *process) finishOutput(out *commandOutput) string {
	finished := make(chan struct{})
	go func() {
		out.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
	case <-time.After(outputDrain):
		// A process the command left behind holds the pipes open; closing
		// our ends unblocks the readers.
		_ = p.stdout.Close()
		_ = p.stderr.Close()
		<-finished
	}
	out.mu.Lock()
	defer out.mu.Unlock()
	return strings.TrimSpace(out.tail)
}

func lastBytes(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[len(s)-n:]
}
