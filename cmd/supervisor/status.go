package main

import (
	"github.com/agent-supervisor/supervisor/internal/agent"
	"github.com/agent-supervisor/supervisor/internal/proc"
	syncq "github.com/agent-supervisor/supervisor/internal/sync"
	"github.com/agent-supervisor/supervisor/internal/watch"
)

// statusDoc is the JSON document served on /status. docs: README.md,
// section "Endpoints".
type statusDoc struct {
	Version  string         `json:"version"`
	Ready    bool           `json:"ready"`
	NotReady string         `json:"not_ready_reason,omitempty"`
	Child    *proc.Snapshot `json:"child"`
	Agent    agent.Session  `json:"agent"`
	Queue    syncq.Status   `json:"queue"`
	Watcher  watch.Status   `json:"watcher"`
	Backend  string         `json:"backend"`
	// Unsynced lists what the final flush could not deliver.
	Unsynced []string `json:"unsynced,omitempty"`
}

func (s *supervisor) status() any {
	ready, reason := s.readiness.Ready()
	doc := statusDoc{
		Version:  version,
		Ready:    ready,
		NotReady: reason,
		Agent:    s.decoder.Session(),
		Queue:    s.queue.Status(),
		Watcher:  s.watcher.Status(),
		Backend:  redactTarget(s.cfg.Sync),
	}
	s.mu.Lock()
	child := s.child
	doc.Unsynced = s.unsynced
	s.mu.Unlock()
	if child != nil {
		snap := child.Snapshot()
		doc.Child = &snap
	}
	return doc
}
