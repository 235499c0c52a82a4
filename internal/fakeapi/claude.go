package fakeapi

import (
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
)

// Environment variables that steer tests which run the real CLI.
const (
	// ClaudeBinEnv names the CLI binary to use, overriding the search.
	ClaudeBinEnv = "CLAUDE_BIN"
	// RequireClaudeEnv, set to 1, makes a missing CLI a test failure
	// rather than a skip. CI sets it so that the end-to-end tests cannot
	// silently stop running.
	RequireClaudeEnv = "SUPERVISOR_REQUIRE_CLAUDE"
)

// ErrNoClaude reports that the Claude Code CLI was not found.
var ErrNoClaude = errors.New("claude CLI not found")

// FindClaude returns the path of the Claude Code CLI: $CLAUDE_BIN when set,
// else "claude" on PATH, else node_modules/.bin/claude in the working
// directory or any directory above it (where `npm install
// @anthropic-ai/claude-code` at the repository root puts it).
func FindClaude() (string, error) {
	if bin := os.Getenv(ClaudeBinEnv); bin != "" {
		path, err := exec.LookPath(bin)
		if err != nil {
			return "", fmt.Errorf("unable to use %s=%s: %w", ClaudeBinEnv, bin, err)
		}
		return path, nil
	}
	if path, err := exec.LookPath("claude"); err == nil {
		return path, nil
	}
	dir, err := os.Getwd()
	if err != nil {
		return "", fmt.Errorf("unable to find claude: %w", err)
	}
	for {
		candidate := filepath.Join(dir, "node_modules", ".bin", "claude")
		if path, err := exec.LookPath(candidate); err == nil {
			return path, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			break
		}
		dir = parent
	}
	return "", fmt.Errorf("%w: set %s, put claude on PATH or run "+
		"`npm install @anthropic-ai/claude-code` at the repository root", ErrNoClaude, ClaudeBinEnv)
}

// ClaudeEnv returns an environment for running the real CLI against the
// fake API at baseURL with home as its HOME: the current environment less
// every ANTHROPIC_* and CLAUDE_* variable (so no real key, endpoint or
// setting leaks in), plus what a headless run as root needs. home should be
// a fresh temporary directory: the CLI writes its settings and session
// history there.
func ClaudeEnv(baseURL, home string) []string {
	var env []string
	for _, kv := range os.Environ() {
		name, _, _ := strings.Cut(kv, "=")
		if strings.HasPrefix(name, "ANTHROPIC_") || strings.HasPrefix(name, "CLAUDE_") ||
			name == "HOME" {
			continue
		}
		env = append(env, kv)
	}
	return append(env,
		"HOME="+home,
		"ANTHROPIC_BASE_URL="+baseURL,
		"ANTHROPIC_API_KEY=test-key",
		// --dangerously-skip-permissions refuses to run as root outside
		// a declared sandbox.
		"IS_SANDBOX=1",
		// Keep the CLI from reaching anything but the fake API.
		"DISABLE_TELEMETRY=1",
		"CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1",
	)
}

// ClaudeArgs are the CLI arguments of a headless run that prints
// stream-json and performs tool calls without asking.
func ClaudeArgs(prompt string) []string {
	return []string{"-p", prompt, "--output-format", "stream-json", "--verbose",
		"--dangerously-skip-permissions"}
}
