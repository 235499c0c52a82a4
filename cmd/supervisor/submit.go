package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"sort"
	"strings"
	"syscall"
	"time"

	"github.com/agent-supervisor/supervisor/internal/control"
)

// exitNoRun is submit's status when no run status can be reported: the
// daemon could not be reached, refused the run (busy, invalid) or went
// away before the run ended. It matches run's status for a supervisor that
// could not start.
const exitNoRun = exitSetup

// submitEnvPrefixes and submitEnvNames are the allow-list of variables
// submit passes from its own environment to the run's child: what the
// Claude CLI and its API client read. Anything else needs --env NAME.
// README.md and docs/control-api.md list the same set.
var (
	submitEnvPrefixes = []string{"ANTHROPIC_", "CLAUDE_", "DISABLE_"}
	submitEnvNames    = []string{"IS_SANDBOX", "MAX_THINKING_TOKENS", "HTTP_PROXY",
		"HTTPS_PROXY", "NO_PROXY", "LANG", "LC_ALL", "TZ"}
)

// submitLocal lists the run flags that submit does not pass on: the
// daemon's own (--listen, --subreaper, the log settings) and
// --sync-token-file, which submit reads itself so that the file need not
// be readable by the daemon.
func submitLocal(name string) bool { return daemonFlags[name] || name == "sync-token-file" }

// submitPaths are the run flags holding paths that submit makes absolute
// against its own directory before they reach the daemon.
var submitPaths = map[string]bool{"workspace": true, "state-dir": true, "tee": true}

type submitConfig struct {
	socket         string
	envNames       []string
	forwardSignals bool
	argv           []string
	request        control.StartRequest
}

// submitCommand implements `supervisor submit`: it asks the daemon on the
// local socket for a run, prints the child's output lines to stdout as they
// arrive, and returns the run's exit status.
func submitCommand(args []string, stdout, stderr io.Writer) int {
	cfg, err := parseSubmit(args, stderr, os.Getenv)
	if errors.Is(err, flag.ErrHelp) {
		return 0
	}
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "supervisor submit: %v\n", err)
		return exitUsage
	}
	return submit(cfg, control.NewUnixClient(cfg.socket), stdout, stderr)
}

func newSubmitFlags(cfg *submitConfig, stderr io.Writer) *flag.FlagSet {
	// The run flags are registered too, for their names, help and checks;
	// the values given are passed on to the daemon's run.
	fs := newRunFlags(&runConfig{}, stderr)
	fs.Init("submit", flag.ContinueOnError)
	fs.Usage = func() {
		_, _ = fmt.Fprint(stderr, "usage: supervisor submit [flags] -- COMMAND [ARG...]\n\n"+
			"Asks `supervisor serve` for a run, prints the child's output lines and exits\n"+
			"with the run's status. Flags of `supervisor run` apply to the run (except\n"+
			"--listen, --subreaper and the log flags, which belong to the daemon); unset,\n"+
			"they come from SUPERVISOR_<NAME> here, then from the daemon's environment.\n"+
			"Flags:\n\n")
		fs.PrintDefaults()
	}
	fs.StringVar(&cfg.socket, "socket", control.DefaultSocket(),
		"the daemon's control socket")
	fs.Var((*stringList)(&cfg.envNames), "env",
		"NAME or NAME=VALUE: also pass this variable to the child; repeatable (ANTHROPIC_*, "+
			"CLAUDE_*, DISABLE_*, IS_SANDBOX, MAX_THINKING_TOKENS, proxy and locale "+
			"variables are passed without it)")
	fs.BoolVar(&cfg.forwardSignals, "forward-signals", false,
		"on SIGINT, SIGTERM or SIGHUP, send the signal to the run and wait for its end; "+
			"by default submit exits at once and the run goes on")
	return fs
}

// parseSubmit turns submit's arguments and environment into the request.
func parseSubmit(args []string, stderr io.Writer, getenv func(string) string) (*submitConfig, error) {
	cfg := &submitConfig{}
	fs := newSubmitFlags(cfg, stderr)
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	cfg.argv = fs.Args()
	if len(cfg.argv) == 0 {
		return nil, errors.New("no command given: supervisor submit [flags] -- COMMAND [ARG...]")
	}
	if socket := getenv("SUPERVISOR_SOCKET"); socket != "" && !flagSet(fs, "socket") {
		cfg.socket = socket
	}
	wd, err := os.Getwd()
	if err != nil {
		return nil, fmt.Errorf("unable to get the current directory: %w", err)
	}
	req := control.StartRequest{Argv: cfg.argv, Dir: wd}
	submitOptions(fs, &req, wd, getenv)
	if req.SyncToken, err = submitToken(fs, getenv); err != nil {
		return nil, err
	}
	if req.Env, err = submitEnv(os.Environ(), cfg.envNames); err != nil {
		return nil, err
	}
	cfg.request = req
	return cfg, nil
}

// submitOptions passes on every run flag given on the command line or as
// SUPERVISOR_<NAME> in submit's environment.
func submitOptions(fs *flag.FlagSet, req *control.StartRequest, wd string,
	getenv func(string) string) {
	given := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { given[f.Name] = true })
	fs.VisitAll(func(f *flag.Flag) {
		if submitLocal(f.Name) || isSubmitFlag(f.Name) {
			return
		}
		var values []string
		if given[f.Name] {
			values = flagValues(f)
		} else if v := getenv(envName(f.Name)); v != "" {
			values = []string{v}
			if _, repeatable := f.Value.(*stringList); repeatable {
				values = strings.Split(v, ",")
			}
		}
		for _, v := range values {
			v = strings.TrimSpace(v)
			if submitPaths[f.Name] && v != "" {
				v = absFrom(wd, v)
			}
			switch f.Name {
			case "workspace":
				req.Workspace = v
			case "sync":
				if dir, ok := strings.CutPrefix(v, "dir:"); ok {
					v = "dir:" + absFrom(wd, dir)
				}
				req.Sync = v
			default:
				req.Options = append(req.Options, "--"+f.Name+"="+v)
			}
		}
	})
}

func isSubmitFlag(name string) bool {
	return name == "socket" || name == "env" || name == "forward-signals"
}

func flagValues(f *flag.Flag) []string {
	if l, ok := f.Value.(*stringList); ok {
		return *l
	}
	return []string{f.Value.String()}
}

func flagSet(fs *flag.FlagSet, name string) bool {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == name })
	return set
}

func envName(flagName string) string {
	return "SUPERVISOR_" + strings.ToUpper(strings.ReplaceAll(flagName, "-", "_"))
}

func absFrom(wd, p string) string {
	if filepath.IsAbs(p) {
		return filepath.Clean(p)
	}
	return filepath.Join(wd, p)
}

// submitToken reads the sync token from --sync-token-file or
// SUPERVISOR_SYNC_TOKEN, as run does; empty leaves the daemon's own.
func submitToken(fs *flag.FlagSet, getenv func(string) string) (string, error) {
	file := fs.Lookup("sync-token-file").Value.String()
	if file == "" {
		file = getenv(envName("sync-token-file"))
	}
	cfg := runConfig{SyncTokenFile: file}
	if err := cfg.loadSyncToken(getenv); err != nil {
		return "", err
	}
	return string(cfg.syncToken), nil
}

// submitEnv picks the allow-listed variables from env, then the ones
// named by --env (NAME takes submit's value, NAME=VALUE sets one).
func submitEnv(env, extra []string) (map[string]string, error) {
	out := map[string]string{}
	values := map[string]string{}
	for _, kv := range env {
		name, value, _ := strings.Cut(kv, "=")
		values[name] = value
		if allowedEnv(name) {
			out[name] = value
		}
	}
	for _, e := range extra {
		name, value, hasValue := strings.Cut(e, "=")
		if name == "" || strings.HasPrefix(name, "SUPERVISOR_") {
			return nil, fmt.Errorf("--env %q: want NAME or NAME=VALUE, and no SUPERVISOR_ "+
				"variable (those configure the run: use its flags)", e)
		}
		if !hasValue {
			v, ok := values[name]
			if !ok {
				continue
			}
			value = v
		}
		out[name] = value
	}
	return out, nil
}

func allowedEnv(name string) bool {
	for _, p := range submitEnvPrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	for _, n := range submitEnvNames {
		if name == n {
			return true
		}
	}
	return false
}

// submit starts the run and follows its events to the end.
func submit(cfg *submitConfig, client *control.Client, stdout, stderr io.Writer) int {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGINT, syscall.SIGTERM, syscall.SIGHUP)
	defer signal.Stop(sigs)

	info, err := client.Start(ctx, cfg.request)
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "supervisor submit: unable to start the run: %v\n", err)
		return exitNoRun
	}

	// The stream runs in the background so that a signal is handled while
	// output flows.
	result := make(chan int, 1)
	go func() { result <- follow(ctx, client, info.ID, stdout, stderr) }()
	for {
		select {
		case code := <-result:
			return code
		case sig := <-sigs:
			if !cfg.forwardSignals {
				_, _ = fmt.Fprintf(stderr, "supervisor submit: %s; run %s goes on in the "+
					"daemon (--forward-signals passes signals on)\n", sig, info.ID)
				return 128 + int(sig.(syscall.Signal))
			}
			name := sigName(sig)
			if err := client.Signal(ctx, info.ID, name); err != nil &&
				!errors.Is(err, control.ErrFinished) {
				_, _ = fmt.Fprintf(stderr, "supervisor submit: unable to send %s to run %s: %v\n",
					name, info.ID, err)
			}
		}
	}
}

func sigName(sig os.Signal) string {
	switch sig {
	case syscall.SIGINT:
		return "SIGINT"
	case syscall.SIGHUP:
		return "SIGHUP"
	}
	return "SIGTERM"
}

// reconnectFor bounds how long submit keeps trying to resume a broken
// event stream before it gives up on the daemon.
const reconnectFor = 30 * time.Second

// follow prints the run's output lines and returns its exit status,
// resuming the stream after the last event seen when it breaks.
func follow(ctx context.Context, client *control.Client, id string, stdout,
	stderr io.Writer) int {
	code := exitNoRun
	var after uint64
	brokeAt := time.Time{}
	for {
		var err error
		after, err = client.Events(ctx, id, after, func(e control.Event) error {
			brokeAt = time.Time{}
			return printEvent(e, stdout, stderr, &code)
		})
		if err == nil {
			return code
		}
		if brokeAt.IsZero() {
			brokeAt = time.Now()
		}
		if errors.Is(err, control.ErrNotFound) || time.Since(brokeAt) > reconnectFor {
			_, _ = fmt.Fprintf(stderr, "supervisor submit: lost run %s: %v\n", id, err)
			return exitNoRun
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func printEvent(e control.Event, stdout, stderr io.Writer, code *int) error {
	switch e.Type {
	case control.EventLine:
		if _, err := fmt.Fprintf(stdout, "%s\n", e.Data); err != nil {
			// Nobody reads stdout any more; the run goes on regardless.
			return nil
		}
	case control.EventLineSkipped:
		_, _ = fmt.Fprintf(stderr, "supervisor submit: an output line was too long for the "+
			"event buffer and is missing here: %s\n", e.Data)
	case control.EventGap:
		_, _ = fmt.Fprintf(stderr, "supervisor submit: output lost while reconnecting: %s\n",
			e.Data)
	case control.EventSyncFailed:
		var d control.SyncFailedData
		if jsonInto(e.Data, &d) && d.Permanent {
			_, _ = fmt.Fprintf(stderr, "supervisor submit: %s %s failed for good: %s\n",
				d.Op, d.Path, d.Error)
		}
	case control.EventExit:
		var d control.ExitData
		if jsonInto(e.Data, &d) {
			*code = d.ExitCode
			if d.Error != "" {
				_, _ = fmt.Fprintf(stderr, "supervisor submit: %s\n", d.Error)
			}
			if len(d.Unsynced) > 0 {
				sort.Strings(d.Unsynced)
				_, _ = fmt.Fprintf(stderr, "supervisor submit: %d paths left unsynced: %s\n",
					len(d.Unsynced), strings.Join(d.Unsynced, " "))
			}
		}
	}
	return nil
}

func jsonInto(data []byte, v any) bool { return json.Unmarshal(data, v) == nil }
