package main

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"strings"
	"testing"

	"github.com/hashicorp/go-hclog"

	"github.com/agent-supervisor/supervisor/internal/fakeapi"
)

func TestEmbeddedDemoMatchesTestdata(t *testing.T) {
	want, err := os.ReadFile("../../testdata/sessions/demo.json")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(demoSession, want) {
		t.Error("cmd/fakeapi/demo.json differs from testdata/sessions/demo.json; " +
			"run `go generate ./cmd/fakeapi`")
	}
}

func TestServePrintsBaseURLFirstAndPlaysTheDemo(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	out, w := io.Pipe()
	done := make(chan error, 1)
	go func() {
		cfg := config{addr: "127.0.0.1:0", workspace: t.TempDir(), vars: varFlags{}}
		done <- serve(ctx, hclog.NewNullLogger(), w, cfg)
		w.Close()
	}()

	url, err := bufio.NewReader(out).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	url = strings.TrimSpace(url)
	if !strings.HasPrefix(url, "http://127.0.0.1:") {
		t.Fatalf("first line %q, want the base URL", url)
	}

	body := `{"model": "m", "stream": true, "messages": [{"role": "user", "content": "go"}]}`
	resp, err := http.Post(url+"/v1/messages", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	events, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	http.DefaultClient.CloseIdleConnections()
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(events), `"name":"Write"`) ||
		!strings.Contains(string(events), "README.md") {
		t.Errorf("first demo turn does not write README.md:\n%s", events)
	}

	cancel()
	if err := <-done; err != nil {
		t.Errorf("serve returned %v after the context ended", err)
	}
}

func TestServeRefusesNonLoopbackAddress(t *testing.T) {
	cfg := config{addr: "0.0.0.0:0", workspace: ".", vars: varFlags{}}
	err := serve(context.Background(), hclog.NewNullLogger(), io.Discard, cfg)
	if !errors.Is(err, fakeapi.ErrNotLoopback) {
		t.Errorf("serve on 0.0.0.0 returned %v, want a loopback error", err)
	}
}

func TestRunRejectsBadUsage(t *testing.T) {
	tests := [][]string{
		{"-no-such-flag"},
		{"extra-argument"},
		{"-var", "novalue"},
		{"-log-level", "loud"},
		{}, // no -workspace: the scripted agent would write into the current directory
	}
	for _, args := range tests {
		if got := run(args); got != exitUsage {
			t.Errorf("run(%q) = %d, want %d", args, got, exitUsage)
		}
	}
}

func TestRunFailsOnSessionWithUnknownPlaceholder(t *testing.T) {
	// The e2e session needs {{outside}}, which only -var can give.
	args := []string{"-session", "../../testdata/sessions/e2e.json", "-workspace", t.TempDir(),
		"-log-level", "error"}
	if got := run(args); got != exitError {
		t.Errorf("run(%q) = %d, want %d", args, got, exitError)
	}
}
