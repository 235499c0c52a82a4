package agent

import (
	"testing"
)

func TestDecoderCallsOnResultOncePerResultLineWithItsOutcome(t *testing.T) {
	var got []Session
	d, _, _ := newTestDecoder(t, t.TempDir(), func(cfg *Config) {
		cfg.OnResult = func(s Session) { got = append(got, s) }
	})
	feed(t, d, []byte(`{"type":"system","subtype":"init","session_id":"s1","cwd":"/"}`+"\n"+
		`{"type":"assistant","message":{"content":[]}}`+"\n"+
		`{"type":"result","subtype":"success","is_error":false,"num_turns":2}`+"\n"+
		`{"type":"result","subtype":"error_during_execution","is_error":true}`))

	if len(got) != 2 {
		t.Fatalf("OnResult called %d times, want once per result line (2)", len(got))
	}
	if !got[0].ResultSeen || got[0].IsError || got[0].NumTurns != 2 || got[0].ID != "s1" {
		t.Errorf("first call = %+v, want a successful result of session s1 after 2 turns",
			got[0])
	}
	// The second line lacks its newline: Close decodes it.
	if !got[1].IsError {
		t.Errorf("second call = %+v, want the error result", got[1])
	}
}
