package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/hashicorp/go-hclog"

	syncq "github.com/agent-supervisor/supervisor/internal/sync"
)

const defaultListen = "127.0.0.1:9464"

// runConfig is everything `supervisor run` was asked to do, after flags and
// environment are merged. Its zero value is not meaningful; see parseRun.
type runConfig struct {
	Argv []string
	// The watchdogs' flags (watchdog.go).
	watchdogConfig

	Workspace   string
	Sync        string
	StateDir    string
	Listen      string
	Debounce    time.Duration
	MaxDelay    time.Duration
	Grace       time.Duration
	Flush       time.Duration
	Drain       time.Duration
	Ignore      []string
	Gitignore   bool
	Rescan      time.Duration
	Tee         string
	NoPTY       bool
	Concurrency int
	MaxFileSize int64
	SyncTimeout time.Duration
	// SyncTokenFile names a file holding the backend's bearer token;
	// syncToken is the token itself, from that file or SUPERVISOR_SYNC_TOKEN.
	SyncTokenFile string
	syncToken     secret
	Baseline      bool
	Subreaper     bool
	LogLevel      string
	LogFormat     string
}

// stringList is a repeatable string flag.
type stringList []string

func (s *stringList) String() string { return strings.Join(*s, ",") }

func (s *stringList) Set(v string) error {
	*s = append(*s, v)
	return nil
}

func newRunFlags(cfg *runConfig, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("run", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		_, _ = fmt.Fprint(stderr, "usage: supervisor run [flags] -- COMMAND [ARG...]\n\n"+
			"Each flag also reads SUPERVISOR_<NAME> (--state-dir -> SUPERVISOR_STATE_DIR);\n"+
			"a flag on the command line wins. Flags:\n\n")
		fs.PrintDefaults()
	}

	fs.StringVar(&cfg.Workspace, "workspace", "",
		"tree to watch and sync (default: the current directory)")
	fs.StringVar(&cfg.Sync, "sync", "",
		"where changes go (required): dir:PATH mirrors into a local directory; "+
			"http://HOST/BASE or https://... PUTs and DELETEs each path (docs/sync-protocol.md); "+
			"exec:TEMPLATE runs a command per change, with {op}, {path} and {abs} "+
			"replaced inside single arguments, never through a shell")
	fs.StringVar(&cfg.StateDir, "state-dir", "",
		"manifest and other state (default: .supervisor inside the workspace; never synced)")
	fs.StringVar(&cfg.Listen, "listen", defaultListen,
		"address for /metrics, /healthz, /readyz and /status; port 0 picks a free port, "+
			"empty disables the server")
	fs.DurationVar(&cfg.Debounce, "debounce", 20*time.Millisecond,
		"quiet time before a filesystem-only change is synced; shorter sends sooner "+
			"but may send a file twice while it is being written")
	fs.DurationVar(&cfg.MaxDelay, "max-delay", time.Second,
		"longest a continuously changing path waits before it is synced anyway; "+
			"0 syncs every change at once and needs --debounce 0")
	fs.DurationVar(&cfg.Grace, "grace", 10*time.Second,
		"after forwarding SIGTERM, how long the child's process group has before SIGKILL; "+
			"0 sends SIGKILL right after SIGTERM, leaving the child no time to clean up")
	fs.DurationVar(&cfg.Flush, "flush-timeout", 30*time.Second,
		"how long the final scan and drain may take at exit; what is left is listed on "+
			"stderr and synced by the next start; 0 exits without them")
	fs.DurationVar(&cfg.Drain, "drain-timeout", 2*time.Second,
		"after the child exits, how long to keep reading output that a background "+
			"process still writes to the terminal, and to keep writing output to a stdout "+
			"or --tee that stopped reading; must be positive, or the child's last output "+
			"would be lost")
	fs.Var((*stringList)(&cfg.Ignore), "ignore",
		"glob of workspace-relative paths never synced; repeatable; ** spans directories "+
			"(env: comma-separated)")
	fs.BoolVar(&cfg.Gitignore, "gitignore", false,
		"also skip what the workspace's .gitignore files exclude (after .git, the state "+
			"directory and --ignore); off by default because build outputs the user "+
			"wants to see are often gitignored")
	fs.DurationVar(&cfg.Rescan, "rescan-interval", 10*time.Second,
		"how often directories left without an inotify watch (the watch limit was "+
			"reached) are rescanned; shorter finds their changes sooner at the cost of a walk")
	fs.StringVar(&cfg.Tee, "tee", "", "also append the child's raw output to this file")
	fs.BoolVar(&cfg.NoPTY, "no-pty", false,
		"run the child on pipes instead of a pseudo-terminal (some CLIs change their "+
			"output when not on a terminal)")
	fs.IntVar(&cfg.Concurrency, "sync-concurrency", 4,
		"backend operations in flight at once (never two for one path)")
	fs.DurationVar(&cfg.SyncTimeout, "sync-timeout", syncq.DefaultOpTimeout,
		"longest one backend request or exec command may take before it is abandoned "+
			"and retried; raise it for large files on slow links")
	fs.StringVar(&cfg.SyncTokenFile, "sync-token-file", "",
		"file holding the bearer token for an http(s) backend (also handed to exec "+
			"commands as SUPERVISOR_SYNC_TOKEN); or set SUPERVISOR_SYNC_TOKEN itself. "+
			"Never passed to the child")
	fs.Int64Var(&cfg.MaxFileSize, "max-file-size", 100<<20,
		"files larger than this many bytes are skipped and counted")
	fs.BoolVar(&cfg.Baseline, "baseline", false,
		"mark the current tree as already synced without uploading it (for a workspace "+
			"just pulled from the backend)")
	addWatchdogFlags(fs, &cfg.watchdogConfig)
	fs.BoolVar(&cfg.Subreaper, "subreaper", true,
		"when not PID 1, become a child subreaper so orphaned grandchildren are reaped here")
	fs.StringVar(&cfg.LogLevel, "log-level", "info", "trace, debug, info, warn or error")
	fs.StringVar(&cfg.LogFormat, "log-format", "text", "text or json (logs always go to stderr)")
	return fs
}

// parseWithEnv parses args, then fills every flag the command line left
// unset from SUPERVISOR_<NAME>. Repeatable flags take a comma-separated list.
func parseWithEnv(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		return err
	}
	set := map[string]bool{}
	fs.Visit(func(f *flag.Flag) { set[f.Name] = true })

	var errs []error
	fs.VisitAll(func(f *flag.Flag) {
		if set[f.Name] {
			return
		}
		name := "SUPERVISOR_" + strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_"))
		value, ok := os.LookupEnv(name)
		if !ok {
			return
		}
		values := []string{value}
		if _, repeatable := f.Value.(*stringList); repeatable {
			values = strings.Split(value, ",")
		}
		for _, v := range values {
			if err := f.Value.Set(strings.TrimSpace(v)); err != nil {
				errs = append(errs, fmt.Errorf("invalid value %q for %s: %w", value, name, err))
			}
		}
	})
	return errors.Join(errs...)
}

// parseRun turns the arguments of `supervisor run` into a runConfig.
// Errors wrap errUsage.
func parseRun(args []string, stderr io.Writer) (*runConfig, error) {
	cfg := &runConfig{}
	fs := newRunFlags(cfg, stderr)
	if err := parseWithEnv(fs, args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return nil, err
		}
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	cfg.Argv = fs.Args()
	if err := cfg.complete(); err != nil {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	return cfg, nil
}

// complete fills defaults that depend on other settings and rejects
// combinations that cannot work.
func (c *runConfig) complete() error {
	if len(c.Argv) == 0 {
		return errors.New("no command given: supervisor run [flags] -- COMMAND [ARG...]")
	}
	if c.Sync == "" {
		return errors.New("--sync is required (for example --sync dir:/tmp/mirror)")
	}
	if c.Workspace == "" {
		wd, err := os.Getwd()
		if err != nil {
			return fmt.Errorf("unable to get the current directory: %w", err)
		}
		c.Workspace = wd
	}
	abs, err := filepath.Abs(c.Workspace)
	if err != nil {
		return fmt.Errorf("unable to resolve --workspace: %w", err)
	}
	c.Workspace = abs
	if c.StateDir == "" {
		c.StateDir = filepath.Join(c.Workspace, ".supervisor")
	}
	if c.StateDir, err = filepath.Abs(c.StateDir); err != nil {
		return fmt.Errorf("unable to resolve --state-dir: %w", err)
	}
	switch {
	case c.Debounce < 0, c.MaxDelay < 0, c.Grace < 0, c.Flush < 0, c.Drain < 0,
		c.Rescan < 0:
		return errors.New("durations must not be negative")
	case c.Drain == 0:
		return errors.New("--drain-timeout must be positive: the child's last output " +
			"is read and written after it exits")
	case c.MaxDelay < c.Debounce:
		return fmt.Errorf("--max-delay (%s) must not be shorter than --debounce (%s)",
			c.MaxDelay, c.Debounce)
	case c.Concurrency < 1:
		return errors.New("--sync-concurrency must be at least 1")
	case c.MaxFileSize < 0:
		return errors.New("--max-file-size must not be negative")
	case c.SyncTimeout <= 0:
		return errors.New("--sync-timeout must be positive")
	}
	if err := c.loadSyncToken(os.Getenv); err != nil {
		return err
	}
	if err := c.watchdogConfig.check(); err != nil {
		return err
	}
	if hclog.LevelFromString(c.LogLevel) == hclog.NoLevel {
		return fmt.Errorf("--log-level must be trace, debug, info, warn or error, not %q",
			c.LogLevel)
	}
	switch c.LogFormat {
	case "text", "json":
	default:
		return fmt.Errorf("--log-format must be text or json, not %q", c.LogFormat)
	}
	return nil
}
