package agent

import (
	"container/list"
	"strings"
)

// knownTools are the Claude Code tools that keep their own name as a metric
// label. Any other name becomes "other" (or "mcp" for MCP tools), so a
// model that invents tool names cannot grow the label set.
var knownTools = map[string]bool{
	"Agent": true, "AskUserQuestion": true, "Bash": true, "BashOutput": true,
	"Edit": true, "ExitPlanMode": true, "Glob": true, "Grep": true,
	"KillBash": true, "KillShell": true, "LS": true, "MultiEdit": true,
	"NotebookEdit": true, "NotebookRead": true, "Read": true,
	"SlashCommand": true, "Skill": true, "Task": true, "TodoRead": true,
	"TodoWrite": true, "WebFetch": true, "WebSearch": true, "Write": true,
}

// toolLabel returns the bounded metric label for a tool name.
func toolLabel(name string) string {
	switch {
	case knownTools[name]:
		return name
	case strings.HasPrefix(name, "mcp__"):
		return "mcp"
	}
	return "other"
}

// toolKind says what the decoder does when a tool's result arrives.
type toolKind uint8

const (
	toolPlain toolKind = iota // nothing beyond counting errors
	toolFile                  // a non-error result confirms a write to path
	toolShell                 // any result settles pending filesystem changes
)

// classify returns what a tool_use block means for the change queue and,
// for a file tool, the path it names.
func classify(b *block) (toolKind, string) {
	switch b.Name {
	case "Write", "Edit", "MultiEdit":
		return toolFile, string(b.Input.FilePath)
	case "NotebookEdit":
		return toolFile, string(b.Input.NotebookPath)
	case "Bash":
		return toolShell, ""
	}
	return toolPlain, ""
}

// DefaultMaxPendingTools bounds the tool uses remembered while their
// results are outstanding. A result normally follows its tool_use within
// seconds; the bound only matters when results never come (a killed
// subagent), and then the oldest uses are forgotten.
const DefaultMaxPendingTools = 10000

// pendingTool is a tool_use waiting for its tool_result.
type pendingTool struct {
	id    string
	label string
	kind  toolKind
	path  string // as the model wrote it; resolved when the result arrives
}

// pendingTools remembers tool uses by id, forgetting the oldest beyond max.
type pendingTools struct {
	max   int
	byID  map[string]*list.Element
	order *list.List // of *pendingTool, oldest first
}

func newPendingTools(max int) *pendingTools {
	if max <= 0 {
		max = DefaultMaxPendingTools
	}
	return &pendingTools{max: max, byID: make(map[string]*list.Element), order: list.New()}
}

// add remembers t and reports whether an older use had to be forgotten. A
// repeated id replaces the earlier use.
func (p *pendingTools) add(t *pendingTool) (evicted bool) {
	if el, ok := p.byID[t.id]; ok {
		p.order.Remove(el)
	}
	p.byID[t.id] = p.order.PushBack(t)
	if p.order.Len() > p.max {
		oldest := p.order.Front()
		p.order.Remove(oldest)
		delete(p.byID, oldest.Value.(*pendingTool).id)
		return true
	}
	return false
}

// take returns and forgets the use with the given id.
func (p *pendingTools) take(id string) (*pendingTool, bool) {
	el, ok := p.byID[id]
	if !ok {
		return nil, false
	}
	p.order.Remove(el)
	delete(p.byID, id)
	return el.Value.(*pendingTool), true
}

func (p *pendingTools) len() int { return p.order.Len() }
