package proc

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"golang.org/x/sys/unix"
)

// Exit codes a shell reports when it cannot run a command, which the
// supervisor reports the same way.
const (
	ExitCannotExecute = 126
	ExitNotFound      = 127
)

var (
	// ErrNotFound means the command is not a file, or not in PATH.
	ErrNotFound = errors.New("command not found")
	// ErrCannotExecute means the command exists but cannot be executed: no
	// execute permission, a directory, an unknown format, a missing
	// interpreter, or an unusable working directory.
	ErrCannotExecute = errors.New("cannot execute")
)

// StartError reports a command that could not be started. It matches
// ErrNotFound or ErrCannotExecute with errors.Is, and the underlying errno
// (syscall.EACCES, say) when there is one.
type StartError struct {
	Command string // argv[0] as given
	Code    int    // ExitNotFound or ExitCannotExecute
	Err     error  // the cause; may be nil
}

func (e *StartError) Error() string {
	if e.Code == ExitNotFound {
		return fmt.Sprintf("command not found: %s", e.Command)
	}
	if e.Err == nil {
		return fmt.Sprintf("cannot execute %s", e.Command)
	}
	return fmt.Sprintf("cannot execute %s: %v", e.Command, e.Err)
}

func (e *StartError) Unwrap() []error {
	kind := ErrCannotExecute
	if e.Code == ExitNotFound {
		kind = ErrNotFound
	}
	if e.Err == nil {
		return []error{kind}
	}
	return []error{kind, e.Err}
}

func notFound(name string) error {
	return &StartError{Command: name, Code: ExitNotFound}
}

func cannotExecute(name string, err error) error {
	return &StartError{Command: name, Code: ExitCannotExecute, Err: err}
}

// Command is a process for Reaper.Start.
type Command struct {
	// Path is the executable. Empty means Argv[0] looked up with LookPath in
	// the PATH of Env.
	Path string
	// Argv is the argument list, Argv[0] included. It must not be empty.
	Argv []string
	// Env is the environment. Nil means the supervisor's own.
	Env []string
	// Dir is the working directory. Empty means the supervisor's own.
	Dir string
	// Stdin, Stdout and Stderr become the process's descriptors 0, 1 and 2.
	// Nil means /dev/null. The caller keeps ownership and closes its copies
	// after Start.
	Stdin, Stdout, Stderr *os.File
	// Sys sets session, process group and terminal. Nil means a process
	// group of its own (Setpgid), so that signalling the group never
	// reaches the supervisor.
	Sys *syscall.SysProcAttr
}

func (c Command) environ() []string {
	if c.Env == nil {
		return os.Environ()
	}
	return c.Env
}

func (c Command) sys() *syscall.SysProcAttr {
	if c.Sys == nil {
		return &syscall.SysProcAttr{Setpgid: true}
	}
	return c.Sys
}

// childFiles returns the descriptors for the child, opening /dev/null for
// each nil one, and a function that closes what it opened.
//
// Fd puts each file in blocking mode, which is what the child must get: a
// pty slave or pipe end that Go opened non-blocking would make the child's
// writes fail with EAGAIN.
func (c Command) childFiles() (fds []uintptr, closeDevNull func(), err error) {
	var devNull *os.File
	closeDevNull = func() {
		if devNull != nil {
			_ = devNull.Close()
		}
	}
	for _, f := range []*os.File{c.Stdin, c.Stdout, c.Stderr} {
		if f == nil && devNull == nil {
			devNull, err = os.OpenFile(os.DevNull, os.O_RDWR, 0)
			if err != nil {
				return nil, nil, fmt.Errorf("unable to open %s: %w", os.DevNull, err)
			}
		}
		if f == nil {
			f = devNull
		}
		fds = append(fds, f.Fd())
	}
	return fds, closeDevNull, nil
}

// LookPath finds the executable for name the way a POSIX shell does: a name
// with a slash is used as it is; any other is searched in the PATH of env
// (or of the supervisor, when env has none), where an empty entry means the
// current directory. Directories are skipped. When no executable matches
// but a file without execute permission does, that is ErrCannotExecute, as
// in a shell; otherwise ErrNotFound.
func LookPath(name string, env []string) (string, error) {
	if name == "" {
		return "", notFound(name)
	}
	if strings.Contains(name, "/") {
		return name, checkExecutable(name, name)
	}

	var denied error
	for _, dir := range filepath.SplitList(pathOf(env)) {
		if dir == "" {
			dir = "."
		}
		path := filepath.Join(dir, name)
		if dir == "." {
			// Join drops the "./"; keep it so the result names a file, not a
			// command to search again.
			path = "./" + name
		}
		err := checkExecutable(name, path)
		if err == nil {
			return path, nil
		}
		if denied == nil && errors.Is(err, syscall.EACCES) {
			denied = err
		}
	}
	if denied != nil {
		return "", denied
	}
	return "", notFound(name)
}

func pathOf(env []string) string {
	if env == nil {
		return os.Getenv("PATH")
	}
	// The last assignment wins, as in the environment the child receives.
	path, found := "", false
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path, found = v, true
		}
	}
	if !found {
		return os.Getenv("PATH")
	}
	return path
}

// checkExecutable returns nil when path is a file the supervisor may
// execute, else a *StartError saying why not.
func checkExecutable(name, path string) error {
	info, err := os.Stat(path)
	if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
		return notFound(name)
	}
	if err != nil {
		return cannotExecute(name, unwrapErrno(err))
	}
	if info.IsDir() {
		return cannotExecute(name, syscall.EISDIR)
	}
	// AT_EACCESS checks with the effective ids, which exec uses; root passes
	// only when some execute bit is set, as with exec.
	if err := unix.Faccessat(unix.AT_FDCWD, path, unix.X_OK, unix.AT_EACCESS); err != nil {
		return cannotExecute(name, unwrapErrno(err))
	}
	return nil
}

// checkDir fails early on a working directory the child could not enter,
// because a chdir failure inside ForkExec is indistinguishable from an exec
// failure with the same errno.
func checkDir(name, dir string) error {
	if dir == "" {
		return nil
	}
	info, err := os.Stat(dir)
	if err != nil {
		return cannotExecute(name, fmt.Errorf("working directory: %w", unwrapErrno(err)))
	}
	if !info.IsDir() {
		return cannotExecute(name, fmt.Errorf("working directory %s: %w", dir, syscall.ENOTDIR))
	}
	return nil
}

// execError turns a ForkExec failure into a *StartError. The path was found
// executable a moment before, so ENOENT from exec means the file is gone,
// or, when it is still there, that its interpreter or loader is missing,
// which a shell reports as 126 too.
func execError(name, path string, err error) error {
	if errors.Is(err, syscall.ENOENT) {
		if _, statErr := os.Stat(path); errors.Is(statErr, fs.ErrNotExist) {
			return notFound(name)
		}
		return cannotExecute(name, fmt.Errorf("bad interpreter or loader: %w", err))
	}
	return cannotExecute(name, err)
}

// unwrapErrno returns the errno inside a *fs.PathError, so that messages
// read "permission denied" instead of repeating the path.
func unwrapErrno(err error) error {
	var errno syscall.Errno
	if errors.As(err, &errno) {
		return errno
	}
	return err
}
