package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/agent-supervisor/supervisor/internal/fakeapi"
	"github.com/agent-supervisor/supervisor/internal/metrics"
)

// TestPrometheusScrapesTheSupervisorDuringAnAgentSession runs the real CLI
// through the demo session under `supervisor run`, points a real Prometheus
// (configured from deploy/prometheus) at it, and holds the session's last
// turn until Prometheus' HTTP API shows the target up, sync counters and the
// latency histogram with data, and the shipped alerting rules loaded. The
// /metrics text also passes `promtool check metrics`.
func TestPrometheusScrapesTheSupervisorDuringAnAgentSession(t *testing.T) {
	claude := requireClaude(t)
	promtool := requireTool(t, "promtool")
	requireTool(t, "prometheus")
	root := t.TempDir()
	ws, mirror, home := filepath.Join(root, "workspace"), filepath.Join(root, "mirror"),
		filepath.Join(root, "home")
	for _, d := range []string{ws, home} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			t.Fatal(err)
		}
	}
	session, err := fakeapi.LoadSession("../../testdata/sessions/demo.json",
		map[string]string{"workspace": ws})
	if err != nil {
		t.Fatal(err)
	}

	// The CLI waits for its last turn until Prometheus has seen the rest,
	// or until the test ends early.
	scraped := make(chan struct{})
	release := sync.OnceFunc(func() { close(scraped) })
	defer release()
	handler := &fakeapi.Handler{Session: session, OnTurn: func(turn int) {
		if turn == len(session.Turns)-1 {
			select {
			case <-scraped:
			case <-time.After(2 * time.Minute):
			}
		}
	}}
	api, err := fakeapi.Listen(fakeapi.DefaultAddr, handler)
	if err != nil {
		t.Fatal(err)
	}
	defer func() { _ = api.Close() }()

	args := append([]string{"run", "--sync", "dir:" + mirror, "--listen", "127.0.0.1:0",
		"--", claude}, fakeapi.ClaudeArgs("do the work")...)
	sup := startSupervisor(t, ws, fakeapi.ClaudeEnv(api.URL(), home), args...)
	addr := sup.metricsAddr(t)
	prom := startPrometheus(t, addr)

	// The demo writes README.md, src/hello.sh (twice) and docs/CHANGELOG.md
	// before its last turn: at least three successful puts and latencies.
	buckets := strconv.Itoa(len(metrics.LatencyBuckets) + 1)
	checks := []struct{ query, want string }{
		{`up{job="supervisor"}`, "1"},
		// rate() in the dashboard needs more than one scrape.
		{`count_over_time(up{job="supervisor"}[1m]) >= bool 3`, "1"},
		{`sum(supervisor_sync_operations_total{op="put",result="success"}) >= bool 3`, "1"},
		{`sum(supervisor_sync_latency_seconds_count{op="put"}) >= bool 3`, "1"},
		{`sum(supervisor_sync_latency_seconds_bucket{op="put",le="+Inf"}) >= bool 3`, "1"},
		{`count(supervisor_sync_latency_seconds_bucket{op="put"})`, buckets},
		{`supervisor_sync_queue_depth >= bool 0`, "1"},
		{`supervisor_agent_tool_uses_total{tool="Write"} >= bool 2`, "1"},
		{`supervisor_child_running`, "1"},
		{`supervisor_ready`, "1"},
	}
	deadline := time.Now().Add(time.Minute)
	for _, c := range checks {
		var got string
		for {
			if got = prom.query(t, c.query); got == c.want || time.Now().After(deadline) {
				break
			}
			time.Sleep(200 * time.Millisecond)
		}
		if got != c.want {
			t.Errorf("Prometheus answers %s = %q, want %q", c.query, got, c.want)
		}
	}
	if n := prom.loadedRules(t); n < 10 {
		t.Errorf("Prometheus loaded %d alerting rules from deploy/prometheus/rules.yml", n)
	}
	checkDashboardQueries(t, prom)
	checkMetricsWithPromtool(t, promtool, addr)
	release()

	if code := sup.wait(t, 2*time.Minute); code != 0 {
		t.Errorf("exit status %d, want the CLI's 0", code)
	}
}

// TestSeriesDoNotGrowWithTheNumberOfFiles writes 20,000 distinct files
// into a supervised workspace and compares the supervisor_ series before
// and after they are all synced: the same set, because no label holds a
// path.
func TestSeriesDoNotGrowWithTheNumberOfFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("writes and syncs 20,000 files")
	}
	root := t.TempDir()
	ws := filepath.Join(root, "workspace")
	if err := os.MkdirAll(ws, 0o755); err != nil {
		t.Fatal(err)
	}
	sup, release := startHeld(t, ws, "--sync", "dir:"+filepath.Join(root, "mirror"),
		"--sync-concurrency", "8")
	addr := sup.metricsAddr(t)
	waitFor(t, func() bool { code, _ := readyz(t, addr); return code == http.StatusOK })
	before := ownSeries(scrape(t, addr))

	const files = 20000
	makeFiles(t, ws, "burst", 40, files/40)
	var after map[string]float64
	deadline := time.Now().Add(3 * time.Minute)
	for {
		after = scrape(t, addr)
		synced := after[`supervisor_sync_operations_total{op="put",result="success"}`]
		if synced >= files && after["supervisor_sync_queue_depth"] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %v of %d files synced within 3 minutes", synced, files)
		}
		time.Sleep(250 * time.Millisecond)
	}

	got := ownSeries(after)
	for s := range got {
		if !before[s] {
			t.Errorf("new series after %d files: %s", files, s)
		}
	}
	for s := range before {
		if !got[s] {
			t.Errorf("series gone after %d files: %s", files, s)
		}
	}
	t.Logf("%d supervisor_ series before and %d after %d files", len(before), len(got), files)
	if detected := after[`supervisor_changes_detected_total{source="fs"}`] +
		after[`supervisor_changes_detected_total{source="scan"}`]; detected < files {
		t.Errorf("%v changes detected, want at least %d", detected, files)
	}

	release()
	sup.wait(t, time.Minute)
}

// checkDashboardQueries evaluates every query of the Grafana dashboard,
// with its variables filled in as Grafana would, against Prometheus: each
// must parse and evaluate, and the panels on sync and the agent must show
// data.
func checkDashboardQueries(t *testing.T, prom *prometheus) {
	t.Helper()
	var dashboard struct {
		Panels []struct {
			Title   string `json:"title"`
			Targets []struct {
				Expr string `json:"expr"`
			} `json:"targets"`
		} `json:"panels"`
	}
	data, err := os.ReadFile("../../deploy/grafana/dashboards/supervisor.json")
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(data, &dashboard); err != nil {
		t.Fatal(err)
	}
	variables := strings.NewReplacer("$instance", ".*", "$__rate_interval", "1m",
		"$__range", "5m")
	queries := 0
	for _, p := range dashboard.Panels {
		for _, target := range p.Targets {
			queries++
			samples, err := prom.evaluate(t, variables.Replace(target.Expr))
			if err != nil {
				t.Errorf("panel %q: %s: %v", p.Title, target.Expr, err)
				continue
			}
			if samples == 0 && (strings.Contains(target.Expr, "supervisor_sync_operations_total") ||
				strings.Contains(target.Expr, "supervisor_agent_tool_uses_total")) {
				t.Errorf("panel %q shows no data: %s", p.Title, target.Expr)
			}
		}
	}
	if queries < 20 {
		t.Errorf("the dashboard has %d queries; it lost panels", queries)
	}
}

// ownSeries returns the supervisor_ series of a scrape.
func ownSeries(samples map[string]float64) map[string]bool {
	out := map[string]bool{}
	for s := range samples {
		if strings.HasPrefix(s, "supervisor_") {
			out[s] = true
		}
	}
	return out
}

// checkMetricsWithPromtool runs `promtool check metrics` on /metrics.
func checkMetricsWithPromtool(t *testing.T, promtool, addr string) {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(body)
	if out, err := cmd.CombinedOutput(); err != nil || len(bytes.TrimSpace(out)) > 0 {
		t.Errorf("promtool check metrics: %v\n%s", err, out)
	}
}

// requireTool returns the path of a program the test needs. Outside CI a
// missing program skips the test; in CI (CI set) it fails it, so the test
// cannot silently stop running there.
func requireTool(t *testing.T, name string) string {
	t.Helper()
	path, err := exec.LookPath(name)
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI must run this test: %v (Debian package prometheus)", err)
		}
		t.Skipf("%v; install the Debian package prometheus", err)
	}
	return path
}

// prometheus is a real Prometheus server started by a test.
type prometheus struct {
	url string // http://127.0.0.1:PORT
}

// startPrometheus runs Prometheus on a free loopback port with a temporary
// storage directory, configured by deploy/prometheus with target as the
// only scrape target and one-second intervals, and stops it when the test
// ends.
func startPrometheus(t *testing.T, target string) *prometheus {
	t.Helper()
	bin := requireTool(t, "prometheus")
	dir := t.TempDir()
	config, err := os.ReadFile("../../deploy/prometheus/prometheus.yml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(config)
	for old, replacement := range map[string]string{
		"127.0.0.1:9464":           target,
		"scrape_interval: 15s":     "scrape_interval: 1s",
		"evaluation_interval: 15s": "evaluation_interval: 1s",
		"scrape_timeout: 5s":       "scrape_timeout: 1s",
	} {
		if strings.Count(text, old) != 1 {
			t.Fatalf("deploy/prometheus/prometheus.yml no longer holds %q once", old)
		}
		text = strings.Replace(text, old, replacement, 1)
	}
	rules, err := os.ReadFile("../../deploy/prometheus/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{"prometheus.yml": []byte(text), "rules.yml": rules} {
		if err := os.WriteFile(filepath.Join(dir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}

	p := &prometheus{url: "http://" + freeLoopbackAddr(t)}
	var logs bytes.Buffer
	cmd := exec.Command(bin,
		"--config.file="+filepath.Join(dir, "prometheus.yml"),
		"--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+strings.TrimPrefix(p.url, "http://"),
		"--log.level=warn")
	cmd.Stdout, cmd.Stderr = &logs, &logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-done:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-done
		}
		if t.Failed() {
			t.Logf("prometheus output:\n%s", logs.String())
		}
	})

	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get(p.url + "/-/ready")
		if err == nil {
			_ = resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return p
			}
		}
		select {
		case <-done:
			t.Fatalf("prometheus exited:\n%s", logs.String())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("prometheus not ready within 30s:\n%s", logs.String())
		}
	}
}

// query evaluates an instant query and returns the value of its single
// sample, or "" when the result holds no sample.
func (p *prometheus) query(t *testing.T, expr string) string {
	t.Helper()
	var result struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Value [2]any `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	p.get(t, "/api/v1/query?query="+url.QueryEscape(expr), &result)
	if result.Status != "success" {
		t.Fatalf("query %s: %s", expr, result.Error)
	}
	switch len(result.Data.Result) {
	case 0:
		return ""
	case 1:
		return fmt.Sprint(result.Data.Result[0].Value[1])
	}
	t.Fatalf("query %s: %d samples, want one", expr, len(result.Data.Result))
	return ""
}

// evaluate runs an instant query and returns how many samples or series
// it yields, or Prometheus' error.
func (p *prometheus) evaluate(t *testing.T, expr string) (int, error) {
	t.Helper()
	var result struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result json.RawMessage `json:"result"`
		} `json:"data"`
	}
	p.get(t, "/api/v1/query?query="+url.QueryEscape(expr), &result)
	if result.Status != "success" {
		return 0, fmt.Errorf("%s", result.Error)
	}
	var series []json.RawMessage
	if err := json.Unmarshal(result.Data.Result, &series); err != nil {
		return 1, nil // a scalar
	}
	return len(series), nil
}

// loadedRules counts the alerting rules Prometheus has loaded.
func (p *prometheus) loadedRules(t *testing.T) int {
	t.Helper()
	var result struct {
		Data struct {
			Groups []struct {
				Rules []struct {
					Type string `json:"type"`
				} `json:"rules"`
			} `json:"groups"`
		} `json:"data"`
	}
	p.get(t, "/api/v1/rules", &result)
	n := 0
	for _, g := range result.Data.Groups {
		for _, r := range g.Rules {
			if r.Type == "alerting" {
				n++
			}
		}
	}
	return n
}

func (p *prometheus) get(t *testing.T, path string, into any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, p.url+path, nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("prometheus %s: %v", path, err)
	}
	defer func() { _ = resp.Body.Close() }()
	if err := json.NewDecoder(resp.Body).Decode(into); err != nil {
		t.Fatalf("prometheus %s: %v", path, err)
	}
}

// freeLoopbackAddr returns a loopback address with a port that was free a
// moment ago, for a program that takes its listen address as a flag.
func freeLoopbackAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	return addr
}
