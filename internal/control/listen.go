package control

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"time"
)

// ErrSocketInUse says another daemon answers on the socket path.
var ErrSocketInUse = errors.New("control socket in use")

// DefaultSocket is where serve listens and submit connects when no socket
// is named: beneath $XDG_RUNTIME_DIR when set (a per-user directory), else
// in a per-user directory under /tmp that ListenUnix creates with mode
// 0700 and checks on every use.
func DefaultSocket() string {
	if dir := os.Getenv("XDG_RUNTIME_DIR"); dir != "" {
		return filepath.Join(dir, "supervisor", "control.sock")
	}
	return filepath.Join(os.TempDir(), "supervisor-"+strconv.Itoa(os.Getuid()), "control.sock")
}

// ListenUnix listens on a unix socket at path that only the current user
// can connect to. The socket is bound in a private directory, given mode
// 0600 and only then renamed into place, so there is no moment at which
// another user could connect. A stale socket from a daemon that died is
// replaced; a live one is ErrSocketInUse.
func ListenUnix(path string) (net.Listener, error) {
	dir := filepath.Dir(path)
	if err := privateDir(dir); err != nil {
		return nil, err
	}
	if err := clearStale(path); err != nil {
		return nil, err
	}

	tmp, err := os.MkdirTemp(dir, ".bind-")
	if err != nil {
		return nil, fmt.Errorf("unable to create a directory to bind in: %w", err)
	}
	defer func() { _ = os.RemoveAll(tmp) }()
	bound := filepath.Join(tmp, "s")
	l, err := net.Listen("unix", bound)
	if err != nil {
		return nil, fmt.Errorf("unable to listen on the control socket: %w", err)
	}
	// The listener would remove the bound name on Close; after the rename
	// that name is gone, and the path must be removed instead.
	ul := l.(*net.UnixListener)
	ul.SetUnlinkOnClose(false)
	if err := os.Chmod(bound, 0o600); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("unable to restrict the control socket: %w", err)
	}
	if err := os.Rename(bound, path); err != nil {
		_ = l.Close()
		return nil, fmt.Errorf("unable to move the control socket into place: %w", err)
	}
	return &socketListener{UnixListener: ul, path: path}, nil
}

// socketListener removes the socket's path when closed.
type socketListener struct {
	*net.UnixListener
	path string
}

func (l *socketListener) Close() error {
	err := l.UnixListener.Close()
	_ = os.Remove(l.path)
	return err
}

// privateDir makes sure dir exists and belongs to the current user or to
// root. A directory another user created (under /tmp, to intercept the
// socket or to read what clients send) is refused; the socket's own mode
// keeps everybody else out of a shared directory.
func privateDir(dir string) error {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("unable to create the control socket's directory: %w", err)
	}
	info, err := os.Lstat(dir)
	if err != nil {
		return fmt.Errorf("unable to inspect the control socket's directory: %w", err)
	}
	st, ok := info.Sys().(*syscall.Stat_t)
	if !info.IsDir() || !ok || (int(st.Uid) != os.Getuid() && st.Uid != 0) {
		return fmt.Errorf("unable to use %s for the control socket: it is not a directory "+
			"owned by uid %d or root; remove it or choose another --socket", dir, os.Getuid())
	}
	return nil
}

// clearStale removes a socket nobody answers on.
func clearStale(path string) error {
	info, err := os.Lstat(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("unable to inspect the control socket path: %w", err)
	}
	if info.Mode().Type() != os.ModeSocket {
		return fmt.Errorf("unable to listen on %s: it exists and is not a socket", path)
	}
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		_ = c.Close()
		return fmt.Errorf("%w: a daemon already answers on %s", ErrSocketInUse, path)
	}
	if err := os.Remove(path); err != nil {
		return fmt.Errorf("unable to remove the stale control socket: %w", err)
	}
	return nil
}
