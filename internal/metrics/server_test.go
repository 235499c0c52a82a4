package metrics

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func TestReadinessListsEveryUnmetConditionByName(t *testing.T) {
	for _, tc := range []struct {
		name       string
		set        map[string]string
		watch      map[string]string // condition -> what its check returns
		wantReady  bool
		wantReason string
	}{
		{
			name:       "nothing set yet",
			wantReason: "backend: starting; scan: starting; watcher: starting",
		},
		{
			name:       "all set",
			set:        map[string]string{"backend": "", "scan": "", "watcher": ""},
			wantReady:  true,
			wantReason: "",
		},
		{
			name: "backend lost after start",
			set: map[string]string{"backend": "unable to write in mirror directory",
				"scan": "", "watcher": ""},
			wantReason: "backend: unable to write in mirror directory",
		},
		{
			name:       "check makes a met condition unmet",
			set:        map[string]string{"backend": "", "scan": "", "watcher": ""},
			watch:      map[string]string{"watcher": "degraded: watch limit reached"},
			wantReason: "watcher: degraded: watch limit reached",
		},
		{
			name:       "a set reason wins over the check",
			set:        map[string]string{"backend": "", "scan": "", "watcher": "starting"},
			watch:      map[string]string{"watcher": "degraded: watch limit reached"},
			wantReason: "watcher: starting",
		},
		{
			name:      "passing check leaves a met condition met",
			set:       map[string]string{"backend": "", "scan": "", "watcher": ""},
			watch:     map[string]string{"watcher": ""},
			wantReady: true,
		},
		{
			name:       "a watched name that was never declared counts too",
			set:        map[string]string{"backend": "", "scan": "", "watcher": ""},
			watch:      map[string]string{"disk": "state directory full"},
			wantReason: "disk: state directory full",
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := NewReadiness("watcher", "scan", "backend")
			for name, reason := range tc.set {
				r.Set(name, reason)
			}
			for name, reason := range tc.watch {
				r.Watch(name, func() string { return reason })
			}
			ready, reason := r.Ready()
			if ready != tc.wantReady || reason != tc.wantReason {
				t.Errorf("Ready() = %v, %q; want %v, %q", ready, reason, tc.wantReady, tc.wantReason)
			}
		})
	}
}

func TestReadyzAnswers503WithOneLineReasonUntilReady(t *testing.T) {
	r := NewReadiness("backend")
	srv := httptest.NewServer((&Server{Metrics: New(), Readiness: r}).Handler())
	defer srv.Close()

	r.Set("backend", errors.Join(errors.New("unable to write"), errors.New("disk full")).Error())
	code, body := get(t, srv.URL+"/readyz")
	if code != http.StatusServiceUnavailable || body != "not ready: backend: unable to write disk full\n" {
		t.Errorf("unready: %d %q", code, body)
	}

	r.Set("backend", "")
	if code, body := get(t, srv.URL+"/readyz"); code != http.StatusOK || body != "ready\n" {
		t.Errorf("ready: %d %q", code, body)
	}
	if code, _ := get(t, srv.URL+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz: %d", code)
	}
}

func TestStatusServesTheDocumentAsJSON(t *testing.T) {
	doc := map[string]any{"queue": map[string]int{"depth": 3}}
	srv := httptest.NewServer((&Server{Metrics: New(), Readiness: NewReadiness(),
		Status: func() any { return doc }}).Handler())
	defer srv.Close()

	code, body := get(t, srv.URL+"/status")
	var got struct {
		Queue struct{ Depth int } `json:"queue"`
	}
	if err := json.Unmarshal([]byte(body), &got); err != nil || code != http.StatusOK {
		t.Fatalf("/status: %d %v %q", code, err, body)
	}
	if got.Queue.Depth != 3 {
		t.Errorf("/status queue depth %d, want 3", got.Queue.Depth)
	}
}

func TestMetricsEndpointExposesTheRegistry(t *testing.T) {
	m := New()
	m.SyncBackendUp.Set(1)
	srv := httptest.NewServer((&Server{Metrics: m, Readiness: NewReadiness()}).Handler())
	defer srv.Close()

	_, body := get(t, srv.URL+"/metrics")
	for _, want := range []string{"\nsupervisor_sync_backend_up 1\n", "\ngo_goroutines ",
		"\nprocess_start_time_seconds "} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = resp.Body.Close() }()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, string(body)
}
