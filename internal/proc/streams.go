package proc

import (
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// streams are the descriptors between the supervisor and one child: the
// ends the child gets, the ends the supervisor reads, and the console when
// the supervisor's stdin is a terminal.
type streams struct {
	console *console
	master  *os.File // the pty master; nil with pipes

	// outputs are read until end of output or the drain deadline.
	outputs []*os.File
	// stdin, stdout and stderr become the child's descriptors 0-2.
	stdin, stdout, stderr *os.File
	// owned are the child's ends the supervisor opened; they are closed
	// once the child has its copies, so end of output arrives when the
	// child (and whoever inherited them) is done.
	owned []*os.File
	sys   *syscall.SysProcAttr
	// foreground is set when the child's process group was given the
	// console, which must be taken back when it exits.
	foreground bool

	// winch receives SIGWINCH while a console is attached to the pty; it is
	// registered before the child starts so no resize is missed.
	winch      chan os.Signal
	keystrokes chan struct{} // closed when the keystroke copy ends
	wake       [2]int        // pipe that stops the keystroke copy
}

// openStreams prepares a pty or pipes for a child. con is the supervisor's
// terminal, or nil when its stdin is not one.
func openStreams(usePTY bool, con *console) (*streams, error) {
	if usePTY {
		return openPTYStreams(con)
	}
	return openPipeStreams(con)
}

// openPTYStreams gives the child the pty slave as controlling terminal in a
// session of its own. Without a console nobody types, so the child's stdin
// is /dev/null: a read sees end of file at once instead of waiting forever
// on a terminal nobody writes to.
func openPTYStreams(con *console) (*streams, error) {
	master, slave, err := openPTY(con == nil)
	if err != nil {
		return nil, err
	}
	s := &streams{
		console: con,
		master:  master,
		outputs: []*os.File{master},
		stdout:  slave,
		stderr:  slave,
		owned:   []*os.File{slave},
		// Ctty is the child's descriptor: 1, its stdout, which is the slave
		// in both modes.
		sys: &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 1},
	}
	if con == nil {
		return s, nil
	}

	s.stdin = slave
	s.winch = make(chan os.Signal, 1)
	signal.Notify(s.winch, syscall.SIGWINCH)
	if err := con.copySize(master); err != nil {
		_ = s.restoreConsole()
		s.closeOwned()
		s.closeOutputs()
		return nil, err
	}
	if err := con.makeRaw(); err != nil {
		_ = s.restoreConsole()
		s.closeOwned()
		s.closeOutputs()
		return nil, err
	}
	return s, nil
}

// openPipeStreams gives the child a pipe for stdout and one for stderr, in a
// process group of its own so that signals reach its helpers too. With a
// console, stdin is passed through, and the child's group gets the
// terminal's foreground when the supervisor holds it: a background group
// reading the terminal would be stopped by SIGTTIN.
func openPipeStreams(con *console) (*streams, error) {
	outR, outW, err := os.Pipe()
	if err != nil {
		return nil, fmt.Errorf("unable to create the stdout pipe: %w", err)
	}
	errR, errW, err := os.Pipe()
	if err != nil {
		_ = outR.Close()
		_ = outW.Close()
		return nil, fmt.Errorf("unable to create the stderr pipe: %w", err)
	}
	s := &streams{
		console: con,
		outputs: []*os.File{outR, errR},
		stdout:  outW,
		stderr:  errW,
		owned:   []*os.File{outW, errW},
		sys:     &syscall.SysProcAttr{Setpgid: true},
	}
	if con != nil {
		s.stdin = con.f
		if con.isForeground() {
			s.foreground = true
			// For Foreground, Ctty is the supervisor's descriptor.
			s.sys = &syscall.SysProcAttr{Foreground: true, Ctty: con.fd}
		}
	}
	return s, nil
}

// command is the Command that starts the child on these streams.
func (s *streams) command(cfg Config) Command {
	return Command{
		Argv:   cfg.Argv,
		Env:    cfg.Env,
		Dir:    cfg.Dir,
		Stdin:  s.stdin,
		Stdout: s.stdout,
		Stderr: s.stderr,
		Sys:    s.sys,
	}
}

// interactive reports whether keystrokes are copied to a pty.
func (s *streams) interactive() bool { return s.console != nil && s.master != nil }

// copyKeystrokes passes what is typed on the console to the pty until
// stopKeystrokes, or until either side fails.
//
// It polls the console's descriptor together with a wake-up pipe instead
// of reading through os.File: the supervisor's stdin is usually in
// blocking mode, where neither a read deadline nor Close interrupts a
// read, and Wait would hang on the copy until the next keystroke. Setting
// O_NONBLOCK on it instead would change the terminal's file description,
// shared with the shell that started the supervisor.
func (s *streams) copyKeystrokes() error {
	var wake [2]int
	if err := unix.Pipe2(wake[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return fmt.Errorf("unable to create the keystroke wake-up pipe: %w", err)
	}
	s.wake = wake
	s.keystrokes = make(chan struct{})
	go func() {
		defer close(s.keystrokes)
		defer RestoreOnPanic()
		s.pumpKeystrokes(wake[0])
	}()
	return nil
}

func (s *streams) pumpKeystrokes(wake int) {
	fds := []unix.PollFd{
		{Fd: int32(s.console.fd), Events: unix.POLLIN},
		{Fd: int32(wake), Events: unix.POLLIN},
	}
	buf := make([]byte, 4096)
	for {
		if _, err := unix.Poll(fds, -1); err != nil {
			if errors.Is(err, unix.EINTR) {
				continue
			}
			return
		}
		if fds[1].Revents != 0 {
			return
		}
		if fds[0].Revents == 0 {
			continue
		}
		n, err := unix.Read(s.console.fd, buf)
		if errors.Is(err, unix.EAGAIN) || errors.Is(err, unix.EINTR) {
			continue // a stdin in non-blocking mode raced another reader
		}
		if err != nil || n <= 0 {
			return // hung up or closed
		}
		if _, err := s.master.Write(buf[:n]); err != nil {
			return
		}
	}
}

// stopKeystrokes ends the keystroke copy and waits for it. The master must
// be closed first, so that a write blocked on a full pty returns.
func (s *streams) stopKeystrokes() {
	if s.keystrokes == nil {
		return
	}
	_, _ = unix.Write(s.wake[1], []byte{0})
	<-s.keystrokes
	_ = unix.Close(s.wake[0])
	_ = unix.Close(s.wake[1])
	s.keystrokes = nil
}

// restoreConsole gives the terminal back as it was before the child and
// stops following its window size.
func (s *streams) restoreConsole() error {
	if s.console == nil {
		return nil
	}
	if s.winch != nil {
		signal.Stop(s.winch)
	}
	var errs []error
	if s.foreground {
		s.foreground = false
		errs = append(errs, s.console.takeForeground())
	}
	errs = append(errs, s.console.restore())
	return errors.Join(errs...)
}

func (s *streams) closeOwned() {
	for _, f := range s.owned {
		_ = f.Close()
	}
	s.owned = nil
}

func (s *streams) closeOutputs() {
	for _, f := range s.outputs {
		_ = f.Close()
	}
}
