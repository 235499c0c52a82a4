// Package agent reads the Claude Code CLI's stream-json output (run as
// `claude -p ... --output-format stream-json --verbose`) as it is printed,
// and turns it into change hints and session figures.
//
// It owns the line framing of the child's raw output, the decoding of each
// line, the pairing of file-tool uses with their results, and the session
// snapshot that /status shows. A file change is reported only when a
// non-error tool_result confirms an earlier Write, Edit, MultiEdit or
// NotebookEdit: the tool runs after its tool_use line is printed, so the
// file is not written before that. A finished Bash tool reports a settle
// hint, because a shell command writes files without naming them.
//
// It does not read the child's output itself, watch the filesystem, or
// decide what is synced and when: the proc package feeds it bytes, and the
// sync queue consumes its hints. Malformed output never stops it: a line
// that cannot be used is counted and skipped.
package agent

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agent-supervisor/supervisor/internal/change"
	"github.com/agent-supervisor/supervisor/internal/metrics"
)

// Parse error reasons are metric labels; the set is fixed.
const (
	ReasonNotJSON   = "not_json"  // a line that is not a JSON object
	ReasonTooLong   = "too_long"  // a line over Config.MaxLineBytes
	ReasonTruncated = "truncated" // an unfinished object cut off by the end of output
	ReasonBadField  = "bad_field" // a JSON object with a field of the wrong shape
)

// Path drop reasons are metric labels; the set is fixed.
const (
	DropOutside = "outside" // the path does not lie inside the workspace
	DropInvalid = "invalid" // empty, not a string, or the workspace root itself
)

// eventTypes are the stream-json types counted under their own name; any
// other type is counted as "other".
var eventTypes = []string{
	"system", "assistant", "user", "result", "stream_event", "rate_limit_event",
}

// ErrNoWorkspace and ErrNoSink report an incomplete Config.
var (
	ErrNoWorkspace = errors.New("agent decoder needs a workspace")
	ErrNoSink      = errors.New("agent decoder needs a sink")
)

// Config configures a Decoder.
type Config struct {
	// Workspace resolves the paths that file tools name. Required.
	Workspace *change.Workspace
	// Sink receives the hints, from the goroutine that calls Write or
	// Close. Required; Notify must return quickly.
	Sink change.Sink
	// Metrics receives the agent counters. Nil counts into a private set
	// that nobody scrapes.
	Metrics *metrics.Metrics
	// Logger is named "agent" for the decoder's logs. Nil discards them.
	Logger hclog.Logger
	// MaxLineBytes is the longest line kept; longer lines are skipped and
	// counted. Zero means DefaultMaxLineBytes.
	MaxLineBytes int
	// MaxPendingTools bounds the tool uses remembered until their results
	// arrive. Zero means DefaultMaxPendingTools.
	MaxPendingTools int
	// Now stamps the session's result. Nil means time.Now.
	Now func() time.Time
	// OnResult, when not nil, is called with the session after each result
	// line is recorded, from the goroutine that calls Write or Close. It
	// must return quickly. The supervisor's result watchdog uses it.
	OnResult func(Session)
}

// Decoder turns the child's raw output into change hints. Feed it the
// output chunks in order through Write, from one goroutine, and call Close
// at the end of the output to decode a last line that lacks its newline.
//
// Write never fails and never blocks on anything but decoding the lines the
// chunk completes, so it can sit in the path of the pty reader. Session may
// be called from any goroutine.
type Decoder struct {
	ws   *change.Workspace
	sink change.Sink
	m    *metrics.Metrics
	log  hclog.Logger
	now  func() time.Time

	onResult func(Session)

	// feed serialises Write and Close, and guards the fields below it.
	feed    sync.Mutex
	framer  *lineFramer
	pending *pendingTools
	cwd     string // the init line's cwd; relative paths resolve against it

	// mu guards session, which Session copies for other goroutines.
	mu      sync.Mutex
	session Session
}

// Session is a snapshot of what the agent has reported so far.
type Session struct {
	ID       string `json:"session_id,omitempty"`
	Model    string `json:"model,omitempty"`
	CWD      string `json:"cwd,omitempty"`
	ToolUses int    `json:"tool_uses"`

	// The figures of the last result line, valid when ResultSeen is true.
	ResultSeen bool      `json:"result_seen"`
	ResultAt   time.Time `json:"result_at,omitzero"`
	IsError    bool      `json:"is_error"`
	NumTurns   int       `json:"num_turns"`
	CostUSD    float64   `json:"cost_usd"`
	DurationMS int64     `json:"duration_ms"`
}

// NewDecoder returns a Decoder. It fails only for an incomplete Config.
func NewDecoder(cfg Config) (*Decoder, error) {
	if cfg.Workspace == nil {
		return nil, ErrNoWorkspace
	}
	if cfg.Sink == nil {
		return nil, ErrNoSink
	}
	d := &Decoder{
		ws:       cfg.Workspace,
		sink:     cfg.Sink,
		m:        cfg.Metrics,
		log:      cfg.Logger,
		now:      cfg.Now,
		onResult: cfg.OnResult,
		pending:  newPendingTools(cfg.MaxPendingTools),
	}
	if d.m == nil {
		d.m = metrics.New()
	}
	if d.log == nil {
		d.log = hclog.NewNullLogger()
	}
	d.log = d.log.Named("agent")
	if d.now == nil {
		d.now = time.Now
	}
	d.framer = newLineFramer(cfg.MaxLineBytes, d.line, d.lineTooLong)
	d.precreate()
	return d, nil
}

// precreate makes the agent's series exist at 0 before the first line, so
// that rate() and alerts on parse errors work from the start.
func (d *Decoder) precreate() {
	for _, t := range eventTypes {
		d.m.AgentEvents.WithLabelValues(t)
	}
	d.m.AgentEvents.WithLabelValues("other")
	for _, r := range []string{ReasonNotJSON, ReasonTooLong, ReasonTruncated, ReasonBadField} {
		d.m.AgentParseErrors.WithLabelValues(r)
	}
	for _, r := range []string{DropOutside, DropInvalid} {
		d.m.AgentPathsDrop.WithLabelValues(r)
	}
}

// Write decodes every line that p completes and keeps the rest for the next
// call. It always returns len(p), nil: output the decoder cannot use is
// counted, never reported as an error that would stop a tee.
func (d *Decoder) Write(p []byte) (int, error) {
	d.feed.Lock()
	defer d.feed.Unlock()
	return d.framer.Write(p)
}

// Close decodes the bytes after the last newline, if any, as the last line.
// A Decoder may be written to again after Close; it starts a new line.
func (d *Decoder) Close() error {
	d.feed.Lock()
	defer d.feed.Unlock()
	d.framer.Flush()
	return nil
}

// Session returns a snapshot of the session figures.
func (d *Decoder) Session() Session {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.session
}

func (d *Decoder) lineTooLong() {
	d.m.AgentParseErrors.WithLabelValues(ReasonTooLong).Inc()
	d.log.Warn("skipped an output line over the size cap; its tool events are lost",
		"max_line_bytes", d.framer.max)
}

func (d *Decoder) parseError(reason string, size int) {
	d.m.AgentParseErrors.WithLabelValues(reason).Inc()
	d.log.Debug("skipped output line", "reason", reason, "line_bytes", size)
}

// line decodes one line of output; complete is false for bytes cut off by
// the end of the output.
func (d *Decoder) line(b []byte, complete bool) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 {
		// Blank lines, and lines that held nothing but terminal escape
		// sequences (the cursor shown again at exit), carry no news.
		return
	}

	// Decode the whole object: keys come in any order. A field of the
	// wrong shape leaves that field zero and the rest decoded.
	var ev event
	if b[0] != '{' {
		d.parseError(ReasonNotJSON, len(b))
		return
	}
	err := json.Unmarshal(b, &ev)
	var shapeErr *json.UnmarshalTypeError
	if err != nil && !errors.As(err, &shapeErr) {
		reason := ReasonNotJSON
		if !complete {
			reason = ReasonTruncated
		}
		d.parseError(reason, len(b))
		return
	}

	d.m.AgentEvents.WithLabelValues(eventLabel(ev.Type)).Inc()
	used := true
	switch {
	case ev.Type == "system" && ev.Subtype == "init":
		d.initSession(&ev)
	case ev.Type == "assistant":
		d.toolUses(&ev)
	case ev.Type == "user":
		d.toolResults(&ev)
	case ev.Type == "result":
		d.result(&ev)
	default:
		// Other types and system subtypes are counted and ignored,
		// whatever the shape of fields they may share with ours.
		used = false
	}

	if used && shapeErr != nil && !plainTextContent(shapeErr) {
		d.m.AgentParseErrors.WithLabelValues(ReasonBadField).Inc()
		d.log.Debug("output line has a field of the wrong shape",
			"type", ev.Type, "field", shapeErr.Field)
	}
}

// plainTextContent reports the one shape mismatch that is no error: a
// message whose content is a plain string (a user prompt) rather than a
// list of blocks. It carries no tool blocks.
func plainTextContent(err *json.UnmarshalTypeError) bool {
	return err.Field == "message.content" && err.Value == "string"
}

func eventLabel(t string) string {
	for _, known := range eventTypes {
		if t == known {
			return t
		}
	}
	return "other"
}

// initSession records the init line. A different session id starts a new
// session: its figures replace those of the previous one.
func (d *Decoder) initSession(ev *event) {
	d.cwd = ev.CWD

	d.mu.Lock()
	if d.session.ID != ev.SessionID {
		d.session = Session{}
	}
	d.session.ID, d.session.Model, d.session.CWD = ev.SessionID, ev.Model, ev.CWD
	d.mu.Unlock()

	d.log.Info("agent session started",
		"session_id", ev.SessionID, "model", ev.Model, "cwd", ev.CWD)
}

// toolUses remembers the tool_use blocks of an assistant line until their
// results arrive.
func (d *Decoder) toolUses(ev *event) {
	uses := 0
	for i := range ev.Message.Content {
		b := &ev.Message.Content[i]
		if b.Type != "tool_use" || b.ID == "" {
			continue
		}
		uses++
		label := toolLabel(b.Name)
		d.m.AgentToolUses.WithLabelValues(label).Inc()

		kind, path := classify(b)
		t := &pendingTool{id: b.ID, label: label, kind: kind, path: path}
		if d.pending.add(t) {
			d.log.Debug("forgot the oldest tool use still waiting for its result",
				"max_pending_tools", d.pending.max)
		}
	}
	if uses == 0 {
		return
	}
	d.mu.Lock()
	d.session.ToolUses += uses
	d.mu.Unlock()
}

// toolResults pairs the tool_result blocks of a user line with their tool
// uses and sends the hints they confirm.
func (d *Decoder) toolResults(ev *event) {
	for i := range ev.Message.Content {
		b := &ev.Message.Content[i]
		if b.Type != "tool_result" || b.ToolUseID == "" {
			continue
		}
		t, ok := d.pending.take(b.ToolUseID)
		if !ok {
			// A use from before the decoder started, or one forgotten
			// under MaxPendingTools: nothing to confirm.
			if b.IsError {
				d.m.AgentToolErrors.WithLabelValues("unknown").Inc()
			}
			continue
		}

		// A shell command is over once its result is printed, failed or
		// not, so whatever it wrote is complete.
		if t.kind == toolShell {
			d.sink.Notify(change.Hint{Kind: change.KindSettle, Source: change.SourceAgent})
		}
		if b.IsError {
			d.m.AgentToolErrors.WithLabelValues(t.label).Inc()
			continue
		}
		if t.kind == toolFile {
			d.confirm(t.path)
		}
	}
}

// confirm sends a path hint for a file a tool has written.
func (d *Decoder) confirm(p string) {
	if p == "" {
		d.m.AgentPathsDrop.WithLabelValues(DropInvalid).Inc()
		d.log.Debug("file tool named no path")
		return
	}
	rel, err := d.ws.Rel(d.cwd, p)
	switch {
	case errors.Is(err, change.ErrOutside):
		d.m.AgentPathsDrop.WithLabelValues(DropOutside).Inc()
		d.log.Debug("file tool path is outside the workspace", "path", p, "cwd", d.cwd)
		return
	case err != nil || rel == "":
		// The workspace root is a directory; no file tool writes it.
		d.m.AgentPathsDrop.WithLabelValues(DropInvalid).Inc()
		d.log.Debug("file tool path is not a file in the workspace", "path", p)
		return
	}
	d.sink.Notify(change.Hint{Kind: change.KindPath, Source: change.SourceAgent, Path: rel})
}

// result records the figures of a result line, which ends a run.
func (d *Decoder) result(ev *event) {
	outcome := "success"
	if ev.IsError || (ev.Subtype != "" && ev.Subtype != "success") {
		outcome = "error"
	}
	d.m.AgentSessions.WithLabelValues(outcome).Inc()
	d.m.AgentCost.Add(amount(ev.TotalCostUSD))
	d.m.AgentTurns.Add(amount(ev.NumTurns))
	d.m.AgentTokens.WithLabelValues("input").Add(amount(ev.Usage.InputTokens))
	d.m.AgentTokens.WithLabelValues("output").Add(amount(ev.Usage.OutputTokens))
	d.m.AgentTokens.WithLabelValues("cache_read").Add(amount(ev.Usage.CacheReadInputTokens))
	d.m.AgentTokens.WithLabelValues("cache_creation").
		Add(amount(ev.Usage.CacheCreationInputTokens))

	d.mu.Lock()
	d.session.ResultSeen = true
	d.session.ResultAt = d.now()
	d.session.IsError = outcome == "error"
	d.session.NumTurns = int(amount(ev.NumTurns))
	d.session.CostUSD = amount(ev.TotalCostUSD)
	d.session.DurationMS = int64(amount(ev.DurationMS))
	session := d.session
	d.mu.Unlock()
	if d.onResult != nil {
		d.onResult(session)
	}

	d.log.Info("agent session finished", "outcome", outcome,
		"num_turns", ev.NumTurns, "duration_ms", ev.DurationMS, "cost_usd", ev.TotalCostUSD)
}

// amount returns x when it is a usable counter increment, else 0: counters
// panic on negative values, and the numbers come from the child's output.
func amount(x float64) float64 {
	if x > 0 && x <= math.MaxInt64/2 {
		return x
	}
	return 0
}
