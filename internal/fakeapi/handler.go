// Package fakeapi is a scripted stand-in for the Anthropic Messages API. It
// lets the real Claude Code CLI run against loopback with no account and no
// key: pointed at it through ANTHROPIC_BASE_URL, the CLI receives scripted
// responses and performs real tool calls (Write, Edit, Bash, ...) in its
// working directory, which is what the supervisor's end-to-end tests need.
//
// The package owns the session file format (LoadSession), the HTTP handler
// that plays a session (Handler) and a loopback server around it (Server).
// It records what the CLI reported back (tool results) so tests can assert
// on it. It does not model the real API beyond what the CLI needs: there is
// no authentication, no token counting worth the name, no rate limiting and
// no model behaviour; the turn served depends only on how many assistant
// messages the request carries.
package fakeapi

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/hashicorp/go-hclog"
)

// MessagesPath is the one endpoint the handler answers.
const MessagesPath = "/v1/messages"

// maxRequestBytes bounds a request body. The CLI resends the whole
// conversation each turn, so a session with a 2 MB Write sends several
// megabytes; 256 MiB leaves room for long sessions and still stops a runaway.
const maxRequestBytes = 256 << 20

// Handler plays a Session over HTTP. Set its fields before the first request;
// a Handler must not be copied after first use.
type Handler struct {
	// Session is the script. A nil Session answers every streamed request
	// with the closing text, as if the script had run out.
	Session *Session

	// Logger receives one line per request. Nil means no logging.
	Logger hclog.Logger

	// ThinkTime delays every scripted turn before it is served, as a model
	// would. Zero means no delay. The delay ends early when the client goes
	// away.
	ThinkTime time.Duration

	// OnTurn, when set, is called after ThinkTime and before the response to
	// a scripted streamed request is written, with the turn's index (which
	// is also the number of turns already completed). Everything the CLI did
	// for the earlier turns is finished by then, so a test can inspect the
	// workspace or a mirror of it here. The CLI waits while OnTurn runs.
	// A turn past the end of the script is passed too, with index
	// len(Session.Turns).
	OnTurn func(turn int)

	mu       sync.Mutex
	requests []Request
	issued   map[string]issuedTool // tool_use id -> the call it names
	results  []ToolResult          // first report of each tool_use id
	reported map[string]bool
}

// Request is what the handler saw of one HTTP request.
type Request struct {
	Method string
	Path   string
	// Model and Stream are the request body's fields; empty and false when
	// the request was not a Messages call.
	Model  string
	Stream bool
	// Turn is the number of assistant messages the request carried, or -1
	// when the request was not a Messages call.
	Turn int
	// Status is the HTTP status the handler answered with.
	Status int
	// ToolResults are the tool_result blocks of the request's last message:
	// what the CLI reports about the previous turn's tool calls.
	ToolResults []ToolResult
}

// ToolResult is one tool_result block the CLI sent back.
type ToolResult struct {
	ToolUseID string
	IsError   bool
	// Content is the result text; a list of text blocks is joined with
	// newlines.
	Content string
	// Turn and Name identify the scripted tool call the result answers;
	// -1 and "" when the id was not issued by this handler.
	Turn int
	Name string
}

type issuedTool struct {
	turn int
	name string
}

// Requests returns a copy of every request seen so far, in arrival order.
func (h *Handler) Requests() []Request {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]Request, len(h.requests))
	copy(out, h.requests)
	return out
}

// ToolResults returns every distinct tool result reported so far, in the
// order they were first seen. The CLI resends the whole conversation with
// each request; this list holds each tool_use id once.
func (h *Handler) ToolResults() []ToolResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	out := make([]ToolResult, len(h.results))
	copy(out, h.results)
	return out
}

// ServeHTTP answers POST /v1/messages: streamed requests play the scripted
// turn, non-streamed ones (titles, summaries, probes) get a short plain
// message. Anything else is 404.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rec := Request{Method: r.Method, Path: r.URL.Path, Turn: -1}
	defer func() { h.record(rec) }()

	if r.Method != http.MethodPost || r.URL.Path != MessagesPath {
		rec.Status = http.StatusNotFound
		h.log().Info("request not served", "method", r.Method, "path", r.URL.Path)
		writeError(w, rec.Status, "not_found_error", "no such endpoint in the fake API")
		return
	}

	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxRequestBytes))
	if err != nil {
		rec.Status = http.StatusBadRequest
		h.log().Warn("unable to read request body", "error", err)
		writeError(w, rec.Status, "invalid_request_error", "unreadable body")
		return
	}
	var req messagesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		rec.Status = http.StatusBadRequest
		h.log().Warn("unable to decode request body", "error", err, "body_bytes", len(body))
		writeError(w, rec.Status, "invalid_request_error", "body is not a Messages request")
		return
	}
	rec.Model, rec.Stream, rec.Turn = req.Model, req.Stream, req.assistantMessages()
	rec.ToolResults = h.noteToolResults(req.lastToolResults())
	rec.Status = http.StatusOK

	h.log().Info("request", "method", r.Method, "path", r.URL.Path, "query", r.URL.RawQuery,
		"model", req.Model,
		"stream", req.Stream, "turn", rec.Turn, "tools", len(req.Tools),
		"body_bytes", len(body), "tool_results", len(rec.ToolResults))

	if !req.Stream {
		h.serveSide(w, req, len(body))
		return
	}
	h.serveTurn(r.Context(), w, req, rec.Turn, len(body))
}

func (h *Handler) log() hclog.Logger {
	if h.Logger == nil {
		return hclog.NewNullLogger()
	}
	return h.Logger
}

func (h *Handler) record(rec Request) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.requests = append(h.requests, rec)
}

// noteToolResults attributes each result to the tool call that asked for it
// and remembers the ones not seen before.
func (h *Handler) noteToolResults(in []ToolResult) []ToolResult {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.reported == nil {
		h.reported = make(map[string]bool)
	}
	out := make([]ToolResult, 0, len(in))
	for _, tr := range in {
		tr.Turn, tr.Name = -1, ""
		if call, ok := h.issued[tr.ToolUseID]; ok {
			tr.Turn, tr.Name = call.turn, call.name
		}
		if !h.reported[tr.ToolUseID] {
			h.reported[tr.ToolUseID] = true
			h.results = append(h.results, tr)
		}
		out = append(out, tr)
	}
	return out
}

// serveTurn streams the scripted turn for a conversation that already holds
// turn assistant messages.
func (h *Handler) serveTurn(ctx context.Context, w http.ResponseWriter,
	req messagesRequest, turn, bodyBytes int) {
	// Think first, then tell the test: by the time OnTurn runs, the CLI has
	// had ThinkTime to settle after the previous turn's tools.
	if h.ThinkTime > 0 {
		t := time.NewTimer(h.ThinkTime)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return
		}
	}
	if h.OnTurn != nil {
		h.OnTurn(turn)
	}

	blocks, scripted := h.blocksFor(turn)
	if !scripted {
		h.log().Warn("script ran out, answering with closing text", "turn", turn)
	}
	resp := h.newResponse(req.Model, turn, blocks)
	if err := writeStream(w, resp, bodyBytes); err != nil {
		h.log().Warn("unable to stream turn", "turn", turn, "error", err)
	}
}

// closingText ends a conversation that outlives its script, so a CLI that
// asks for more turns than scripted stops instead of looping.
const closingText = "The scripted session has no more turns."

func (h *Handler) blocksFor(turn int) ([]Block, bool) {
	if h.Session == nil || turn < 0 || turn >= len(h.Session.Turns) {
		return []Block{{Type: BlockText, Text: closingText}}, false
	}
	return h.Session.Turns[turn].Blocks, true
}

// response is a message about to be written, with fresh ids.
type response struct {
	id     string
	model  string
	blocks []Block
	ids    []string // tool_use id per block; "" for text blocks
}

func (h *Handler) newResponse(model string, turn int, blocks []Block) response {
	resp := response{id: "msg_fake_" + randomID(), model: model, blocks: blocks,
		ids: make([]string, len(blocks))}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.issued == nil {
		h.issued = make(map[string]issuedTool)
	}
	for i, b := range blocks {
		if b.Type == BlockToolUse {
			resp.ids[i] = "toolu_fake_" + randomID()
			h.issued[resp.ids[i]] = issuedTool{turn: turn, name: b.Name}
		}
	}
	return resp
}

// sideText answers every non-streamed request. The CLI uses such calls for
// titles and summaries; a short plain sentence suits all of them.
const sideText = "Scripted session"

func (h *Handler) serveSide(w http.ResponseWriter, req messagesRequest, bodyBytes int) {
	text := sideText
	msg := message{
		ID: "msg_fake_" + randomID(), Type: "message", Role: "assistant", Model: req.Model,
		Content:    []contentBlock{{Type: BlockText, Text: &text}},
		StopReason: "end_turn",
		Usage:      usage{InputTokens: tokens(bodyBytes), OutputTokens: tokens(len(sideText))},
	}
	w.Header().Set("Content-Type", "application/json")
	if err := json.NewEncoder(w).Encode(msg); err != nil {
		h.log().Warn("unable to write side response", "error", err)
	}
}

func writeError(w http.ResponseWriter, status int, kind, text string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	body := map[string]any{"type": "error", "error": map[string]string{"type": kind, "message": text}}
	_ = json.NewEncoder(w).Encode(body)
}

// randomID returns 24 hex digits. Ids only need to differ between responses;
// randomness also keeps them apart across handler restarts.
func randomID() string {
	var b [12]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b[:])
}

// tokens is a stand-in token count: about four bytes per token, at least one.
func tokens(n int) int {
	return n/4 + 1
}

// String names a request for failure messages.
func (r Request) String() string {
	return fmt.Sprintf("%s %s model=%q stream=%t turn=%d status=%d",
		r.Method, r.Path, r.Model, r.Stream, r.Turn, r.Status)
}
