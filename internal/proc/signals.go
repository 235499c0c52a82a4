package proc

import (
	"os"
	"os/signal"
	"syscall"

	"golang.org/x/sys/unix"
)

// ForwardedSignals are the signals the supervisor passes on to the child's
// process group instead of acting on them itself.
var ForwardedSignals = []os.Signal{
	syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP,
	syscall.SIGQUIT, syscall.SIGUSR1, syscall.SIGUSR2,
}

// NotifySignals starts catching ForwardedSignals and returns the channel to
// put in Config.Signals. Call it before starting the child: a signal that
// arrives before the child exists waits in the channel and is forwarded as
// soon as the child runs, instead of killing the supervisor. stop undoes
// the registration.
func NotifySignals() (signals <-chan os.Signal, stop func()) {
	// Sixteen slots hold any burst a person or an orchestrator produces;
	// os/signal drops a signal only when the buffer is full.
	ch := make(chan os.Signal, 16)
	signal.Notify(ch, ForwardedSignals...)
	return ch, func() { signal.Stop(ch) }
}

// terminating reports whether sig asks the child to end, which starts the
// grace period after which the process group is killed.
func terminating(sig syscall.Signal) bool {
	switch sig {
	case syscall.SIGTERM, syscall.SIGINT, syscall.SIGHUP, syscall.SIGQUIT:
		return true
	}
	return false
}

// signalName is the conventional name ("SIGTERM") for logs and /status.
func signalName(sig syscall.Signal) string {
	if sig == 0 {
		return ""
	}
	if name := unix.SignalName(sig); name != "" {
		return name
	}
	return sig.String()
}
