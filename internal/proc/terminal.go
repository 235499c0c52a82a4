package proc

import (
	"fmt"
	"os"
	"os/signal"
	"sync"
	"syscall"

	"github.com/creack/pty"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
)

// openPTY opens a pseudo-terminal pair. The master comes back registered
// with Go's poller, so reads honour deadlines and Close interrupts them.
//
// In batch mode (nobody types: the supervisor's stdin is not a terminal)
// output post-processing and echo are turned off on the slave, so the
// child's bytes reach Output exactly as written: no LF -> CRLF.
func openPTY(batch bool) (master, slave *os.File, err error) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return nil, nil, fmt.Errorf("unable to open a pty: %w", err)
	}
	master, err = pollable(ptmx)
	if err != nil {
		_ = tty.Close()
		return nil, nil, err
	}
	if batch {
		if err := setBatchMode(tty); err != nil {
			_ = master.Close()
			_ = tty.Close()
			return nil, nil, err
		}
	}
	return master, tty, nil
}

// pollable returns a descriptor for the pty master that Go's poller owns in
// non-blocking mode, and closes ptmx.
//
// HACK: problem: creack/pty 1.1.24 calls Fd on the master inside Open,
// which puts it in blocking mode; reads then ignore SetReadDeadline (the
// call succeeds and the read blocks on), so a grandchild holding the pty
// open would keep the drain waiting forever. Why: os.File.Fd hands the
// descriptor to code that may expect blocking I/O. Solution: duplicate the
// descriptor, make it non-blocking, and wrap it with os.NewFile, which
// registers a non-blocking descriptor with the poller. Remove when
// pty.Open returns a master that honours deadlines (its ioctls go through
// SyscallConn instead of Fd).
func pollable(ptmx *os.File) (*os.File, error) {
	defer func() { _ = ptmx.Close() }()
	fd, err := unix.FcntlInt(ptmx.Fd(), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("unable to duplicate the pty master: %w", err)
	}
	if err := unix.SetNonblock(fd, true); err != nil {
		_ = unix.Close(fd)
		return nil, fmt.Errorf("unable to make the pty master non-blocking: %w", err)
	}
	return os.NewFile(uintptr(fd), ptmx.Name()), nil
}

// setBatchMode clears OPOST (no LF -> CRLF and other output mangling) and
// ECHO on tty before the child starts.
func setBatchMode(tty *os.File) error {
	fd := int(tty.Fd())
	tio, err := unix.IoctlGetTermios(fd, unix.TCGETS)
	if err != nil {
		return fmt.Errorf("unable to read pty attributes: %w", err)
	}
	tio.Oflag &^= unix.OPOST
	tio.Lflag &^= unix.ECHO | unix.ECHONL
	if err := unix.IoctlSetTermios(fd, unix.TCSETS, tio); err != nil {
		return fmt.Errorf("unable to set pty attributes: %w", err)
	}
	return nil
}

// console is the supervisor's own stdin when it is a terminal.
type console struct {
	f  *os.File
	fd int
	// mu guards saved, the mode to restore after raw mode; nil while not
	// raw.
	mu    sync.Mutex
	saved *term.State
}

// consoleOf returns f as a console, or nil when f is nil or not a terminal.
//
// The descriptor is taken through SyscallConn rather than Fd, which would
// force f into blocking mode and stop a read deadline from ending the
// keystroke copy.
func consoleOf(f *os.File) *console {
	if f == nil {
		return nil
	}
	sc, err := f.SyscallConn()
	if err != nil {
		return nil
	}
	fd := -1
	if err := sc.Control(func(u uintptr) { fd = int(u) }); err != nil || fd < 0 {
		return nil
	}
	if !term.IsTerminal(fd) {
		return nil
	}
	return &console{f: f, fd: fd}
}

// makeRaw passes every keystroke through unchanged: line editing, Ctrl-C
// and echo become the pty's business, as in a terminal emulator.
func (c *console) makeRaw() error {
	saved, err := term.MakeRaw(c.fd)
	if err != nil {
		return fmt.Errorf("unable to put the terminal in raw mode: %w", err)
	}
	c.mu.Lock()
	c.saved = saved
	c.mu.Unlock()
	registerRaw(c)
	return nil
}

// restore undoes makeRaw; it is safe to call more than once.
func (c *console) restore() error {
	if c == nil {
		return nil
	}
	// The lock makes a restore from a panic or a fatal signal and the
	// normal one after the child's exit happen once, not interleaved.
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.saved == nil {
		return nil
	}
	saved := c.saved
	c.saved = nil
	unregisterRaw(c)
	if err := term.Restore(c.fd, saved); err != nil {
		return fmt.Errorf("unable to restore the terminal mode: %w", err)
	}
	return nil
}

// copySize gives the pty master the console's window size.
func (c *console) copySize(master *os.File) error {
	ws, err := unix.IoctlGetWinsize(c.fd, unix.TIOCGWINSZ)
	if err != nil {
		return fmt.Errorf("unable to read the terminal size: %w", err)
	}
	sc, err := master.SyscallConn()
	if err != nil {
		return fmt.Errorf("unable to set the pty size: %w", err)
	}
	var setErr error
	if err := sc.Control(func(fd uintptr) {
		setErr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws)
	}); err != nil {
		return fmt.Errorf("unable to set the pty size: %w", err)
	}
	if setErr != nil {
		return fmt.Errorf("unable to set the pty size: %w", setErr)
	}
	return nil
}

// isForeground reports whether the console is the supervisor's controlling
// terminal with the supervisor's process group in the foreground: only
// then can a child in a process group of its own be given the terminal.
func (c *console) isForeground() bool {
	pgrp, err := unix.IoctlGetInt(c.fd, unix.TIOCGPGRP)
	return err == nil && pgrp == unix.Getpgrp()
}

// takeForeground puts the supervisor's process group back in the
// foreground after a child that held it has exited.
func (c *console) takeForeground() error {
	// A background process that sets the foreground group gets SIGTTOU,
	// which would stop the supervisor; ignore it for the call.
	signal.Ignore(syscall.SIGTTOU)
	defer signal.Reset(syscall.SIGTTOU)
	if err := unix.IoctlSetPointerInt(c.fd, unix.TIOCSPGRP, unix.Getpgrp()); err != nil {
		return fmt.Errorf("unable to take back the terminal's foreground: %w", err)
	}
	return nil
}
