package main

import (
	"io"

	"github.com/hashicorp/go-hclog"
)

// newLogger returns the root logger; each component takes a Named child of
// it. Logs go to stderr only: stdout belongs to the child.
func newLogger(level, format string, stderr io.Writer) hclog.Logger {
	return hclog.New(&hclog.LoggerOptions{
		Name:       "supervisor",
		Level:      hclog.LevelFromString(level),
		Output:     stderr,
		JSONFormat: format == "json",
	})
}
