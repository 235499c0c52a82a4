package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	syncq "github.com/agent-supervisor/supervisor/internal/sync"
)

// envSyncToken names the variable that carries the backend's bearer token.
// It is read here, never through a flag (a flag's value shows in ps), and
// childEnv keeps it, with every other SUPERVISOR_ variable, from the child.
const envSyncToken = "SUPERVISOR_SYNC_TOKEN"

// secret is a string that formats as a placeholder, so that a token passed
// to a logger or a format verb by mistake does not leak.
type secret string

func (secret) String() string   { return "[redacted]" }
func (secret) GoString() string { return "[redacted]" }

// loadSyncToken reads the bearer token from --sync-token-file or from
// SUPERVISOR_SYNC_TOKEN. Giving both is an error: which one wins would be
// a guess.
func (c *runConfig) loadSyncToken(getenv func(string) string) error {
	fromEnv := getenv(envSyncToken)
	if c.SyncTokenFile == "" {
		return c.setSyncToken(fromEnv, envSyncToken)
	}
	if fromEnv != "" {
		return fmt.Errorf("both %s and --sync-token-file are set; use one", envSyncToken)
	}
	if inside(c.Workspace, c.SyncTokenFile) {
		return fmt.Errorf("--sync-token-file %s lies inside the workspace, where it would be "+
			"synced and read by the agent; keep it elsewhere", c.SyncTokenFile)
	}
	data, err := os.ReadFile(c.SyncTokenFile)
	if err != nil {
		return fmt.Errorf("unable to read --sync-token-file: %w", err)
	}
	token := strings.TrimSpace(string(data))
	if token == "" {
		return fmt.Errorf("--sync-token-file %s is empty", c.SyncTokenFile)
	}
	return c.setSyncToken(token, "--sync-token-file")
}

// inside reports whether path lies in or beneath dir, both made absolute.
func inside(dir, path string) bool {
	dir, errDir := filepath.Abs(dir)
	path, errPath := filepath.Abs(path)
	if dir == "" || errDir != nil || errPath != nil {
		return false
	}
	rel, err := filepath.Rel(dir, path)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, "../")
}

func (c *runConfig) setSyncToken(token, source string) error {
	for _, r := range token {
		if r <= ' ' || r == 0x7f {
			// The token goes into an HTTP header; a blank or control
			// character there would end or split the header.
			return fmt.Errorf("the token in %s contains a blank or control character", source)
		}
	}
	c.syncToken = secret(token)
	return nil
}

// openBackend builds the backend --sync names, with what the http and exec
// backends need from the supervisor: the token, the timeout, the reaper
// through which the exec backend's commands are started and reaped, and a
// logger of their own.
func (s *supervisor) openBackend() (syncq.Backend, error) {
	b, err := syncq.OpenTarget(s.cfg.Sync, syncq.TargetOptions{
		Workspace: s.workspace,
		Starter:   s.reaper,
		Token:     string(s.cfg.syncToken),
		Timeout:   s.cfg.SyncTimeout,
		Logger:    s.log.Named("backend"),
	})
	if errors.Is(err, syncq.ErrUnknownTarget) {
		return nil, fmt.Errorf("%w: %w", errUsage, err)
	}
	return b, err
}
