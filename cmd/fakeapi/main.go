// Command fakeapi serves a scripted Claude session on loopback, so that the
// real Claude Code CLI can be run with no account and no key:
//
//	fakeapi -workspace "$PWD" &   # prints its base URL first
//	ANTHROPIC_BASE_URL=http://127.0.0.1:PORT ANTHROPIC_API_KEY=test-key \
//	    claude -p "do the work" --output-format stream-json --verbose \
//	    --dangerously-skip-permissions
//
// The first line on standard output is the base URL; logs go to standard
// error. Without -session it plays an embedded demo session. It serves until
// interrupted. It never listens on anything but a loopback address.
package main

import (
	"context"
	_ "embed"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agent-supervisor/supervisor/internal/fakeapi"
)

// demoSession is a copy of testdata/sessions/demo.json; go:embed cannot
// reach outside this directory. TestEmbeddedDemoMatchesTestdata keeps the
// two equal.
//
//go:generate cp ../../testdata/sessions/demo.json demo.json
//go:embed demo.json
var demoSession []byte

// Exit statuses.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

func main() {
	os.Exit(run(os.Args[1:]))
}

// varFlags collects repeated -var name=value flags.
type varFlags map[string]string

func (v varFlags) String() string { return fmt.Sprint(map[string]string(v)) }

func (v varFlags) Set(s string) error {
	name, value, ok := strings.Cut(s, "=")
	if !ok || name == "" {
		return errors.New("want name=value")
	}
	v[name] = value
	return nil
}

func run(args []string) int {
	fs := flag.NewFlagSet("fakeapi", flag.ContinueOnError)
	addr := fs.String("addr", fakeapi.DefaultAddr,
		"loopback address to listen on; port 0 picks a free one. Other hosts are refused: "+
			"the fake API has no authentication.")
	session := fs.String("session", "",
		"session file to play (JSON, see testdata/sessions); default: the embedded demo")
	workspace := fs.String("workspace", "",
		"directory the CLI will work in (required unless -var workspace=... is given); "+
			"becomes the {{workspace}} placeholder, made absolute. There is no default: "+
			"the scripted agent writes files there")
	think := fs.Duration("think", 0,
		"delay before each scripted turn, as a model would take; 0 answers at once")
	logLevel := fs.String("log-level", "info", "trace, debug, info, warn or error")
	vars := varFlags{}
	fs.Var(vars, "var", "placeholder value name=value, repeatable (e.g. -var outside=/tmp/x)")
	if err := fs.Parse(args); err != nil {
		return exitUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(os.Stderr, "fakeapi: unexpected arguments %q\n", fs.Args())
		return exitUsage
	}
	if _, ok := vars["workspace"]; !ok && *workspace == "" {
		fmt.Fprintln(os.Stderr, "fakeapi: -workspace is required: the directory the CLI works in")
		return exitUsage
	}

	level := hclog.LevelFromString(*logLevel)
	if level == hclog.NoLevel {
		fmt.Fprintf(os.Stderr, "fakeapi: unknown log level %q\n", *logLevel)
		return exitUsage
	}
	log := hclog.New(&hclog.LoggerOptions{Name: "fakeapi", Output: os.Stderr, Level: level})
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	cfg := config{addr: *addr, session: *session, workspace: *workspace, think: *think, vars: vars}
	if err := serve(ctx, log, os.Stdout, cfg); err != nil {
		log.Error("unable to serve", "error", err)
		return exitError
	}
	return exitOK
}

// config is what the flags ask for.
type config struct {
	addr      string
	session   string // path; "" plays the embedded demo
	workspace string
	think     time.Duration
	vars      varFlags
}

// serve plays the session until ctx ends. The base URL is the first line
// written to out.
func serve(ctx context.Context, log hclog.Logger, out io.Writer, cfg config) error {
	s, err := loadSession(cfg)
	if err != nil {
		return err
	}
	h := &fakeapi.Handler{Session: s, Logger: log, ThinkTime: cfg.think}
	srv, err := fakeapi.Listen(cfg.addr, h)
	if err != nil {
		return err
	}

	// Scripts read the first line to learn the port; print it before
	// anything else can reach stdout.
	if _, err := fmt.Fprintln(out, srv.URL()); err != nil {
		_ = srv.Close()
		return fmt.Errorf("unable to print the base URL: %w", err)
	}
	log.Info("serving session", "url", srv.URL(), "turns", len(s.Turns))

	<-ctx.Done()
	log.Info("stopping", "requests", len(h.Requests()))
	return srv.Close()
}

func loadSession(cfg config) (*fakeapi.Session, error) {
	vars := make(map[string]string, len(cfg.vars)+1)
	for k, v := range cfg.vars {
		vars[k] = v
	}
	// The workspace placeholder must be absolute: the CLI's file tools
	// want absolute paths.
	if _, ok := vars["workspace"]; !ok {
		abs, err := filepath.Abs(cfg.workspace)
		if err != nil {
			return nil, fmt.Errorf("unable to resolve workspace: %w", err)
		}
		vars["workspace"] = abs
	}
	if cfg.session == "" {
		return fakeapi.ParseSession(demoSession, vars)
	}
	return fakeapi.LoadSession(cfg.session, vars)
}
