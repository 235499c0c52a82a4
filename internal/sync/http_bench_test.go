package sync

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	stdsync "sync"
	"testing"
	"time"

	"github.com/agent-supervisor/supervisor/internal/change"
	"github.com/agent-supervisor/supervisor/internal/metrics"
)

// The sync benchmarks compare the supervisor's queue and HTTP backend with
// the pipe it replaces: a shell loop over the agent's events that spawns
// curl for every written file. Both send the same files to the same
// loopback server; latency runs from the moment the changes are announced
// (hints for the queue, lines on the loop's stdin for curl) to the moment
// the server has stored each file. Run them with `make bench-sync`.

const (
	benchFiles    = 300  // files per burst
	benchFileSize = 4096 // bytes per file
)

// arrivalServer stores PUT bodies and notes when each path arrived.
type arrivalServer struct {
	srv *httptest.Server

	mu      stdsync.Mutex
	arrived map[string]time.Time
	notify  chan string
}

func newArrivalServer(b *testing.B) *arrivalServer {
	s := &arrivalServer{arrived: map[string]time.Time{}, notify: make(chan string, 1)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		path := strings.TrimPrefix(r.URL.Path, "/files/")
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		s.mu.Lock()
		s.arrived[path] = time.Now()
		s.mu.Unlock()
		select {
		case s.notify <- path:
		default:
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	b.Cleanup(s.srv.Close)
	return s
}

func (s *arrivalServer) base() string { return s.srv.URL + "/files" }

func (s *arrivalServer) reset() {
	s.mu.Lock()
	defer s.mu.Unlock()
	clear(s.arrived)
}

// latencies returns, for each of paths, how long after start it arrived.
func (s *arrivalServer) latencies(b *testing.B, start time.Time, paths []string) []time.Duration {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]time.Duration, 0, len(paths))
	for _, p := range paths {
		at, ok := s.arrived[p]
		if !ok {
			b.Fatalf("%s never arrived", p)
		}
		out = append(out, at.Sub(start))
	}
	return out
}

// benchWorkspace writes the burst's files (content differs per round, so
// the queue cannot skip them as unchanged) and returns their paths.
func benchWorkspace(b *testing.B, ws string, round int) []string {
	paths := make([]string, benchFiles)
	for i := range benchFiles {
		paths[i] = fmt.Sprintf("src/pkg%02d/file%04d.txt", i%20, i)
		p := filepath.Join(ws, filepath.FromSlash(paths[i]))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		head := fmt.Sprintf("round %d file %d\n", round, i)
		body := head + strings.Repeat("x", benchFileSize-len(head))
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	return paths
}

// benchQueue runs a queue with an HTTP backend for server until the
// benchmark ends.
func benchQueue(b *testing.B, ws string, server *arrivalServer) *Queue {
	workspace, err := change.NewWorkspace(ws)
	if err != nil {
		b.Fatal(err)
	}
	backend, err := NewHTTPBackend(server.base(), TargetOptions{Timeout: 10 * time.Second})
	if err != nil {
		b.Fatal(err)
	}
	q, err := New(Config{Workspace: workspace, Backend: backend, Metrics: metrics.New(),
		StateDir: filepath.Join(b.TempDir(), "state"), Concurrency: DefaultConcurrency})
	if err != nil {
		b.Fatal(err)
	}
	runQueue(b, q, backend.client.CloseIdleConnections)
	return q
}

// reportLatencies adds files/s and latency percentiles to the result.
func reportLatencies(b *testing.B, all []time.Duration, elapsed time.Duration) {
	slices.Sort(all)
	pct := func(p float64) float64 {
		return float64(all[int(p*float64(len(all)-1))].Microseconds()) / 1000
	}
	b.ReportMetric(float64(len(all))/elapsed.Seconds(), "files/s")
	b.ReportMetric(pct(0.50), "p50_ms")
	b.ReportMetric(pct(0.99), "p99_ms")
	b.ReportMetric(pct(1.00), "max_ms")
}

// BenchmarkHTTPSyncBurst announces a burst of benchFiles written files at
// once and waits until the server holds them all.
func BenchmarkHTTPSyncBurst(b *testing.B) {
	b.Run("supervisor", func(b *testing.B) {
		server := newArrivalServer(b)
		ws := b.TempDir()
		q := benchQueue(b, ws, server)
		benchBurst(b, server, ws, func(paths []string) {
			for _, p := range paths {
				q.Notify(change.Hint{Kind: change.KindPath, Source: change.SourceAgent, Path: p})
			}
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			if err := q.Flush(ctx); err != nil {
				b.Fatal(err)
			}
		})
	})
	// The loop the supervisor replaces, one upload at a time, and the same
	// with four uploads at once, the supervisor's default concurrency.
	for name, loop := range map[string]string{
		"curl-per-file":            `while IFS= read -r p; do ` + curlPut(`"$p"`) + `; done`,
		"curl-per-file-4-parallel": `xargs -P 4 -I '{}' ` + curlPut("{}"),
	} {
		b.Run(name, func(b *testing.B) {
			requireCurl(b)
			server := newArrivalServer(b)
			ws := b.TempDir()
			benchBurst(b, server, ws, func(paths []string) {
				runLoop(b, ws, server.base(), loop, paths)
			})
		})
	}
}

func benchBurst(b *testing.B, server *arrivalServer, ws string, send func([]string)) {
	var all []time.Duration
	var elapsed time.Duration
	for round := 0; b.Loop(); round++ {
		b.StopTimer()
		server.reset()
		paths := benchWorkspace(b, ws, round)
		b.StartTimer()

		start := time.Now()
		send(paths)
		lat := server.latencies(b, start, paths)
		elapsed += slices.Max(lat)
		all = append(all, lat...)
	}
	reportLatencies(b, all, elapsed)
}

// curlPut is the upload command of the baseline for one path expression.
func curlPut(path string) string {
	return `curl -sS -f -o /dev/null -X PUT -H 'Content-Type: application/octet-stream' ` +
		`--data-binary @` + path + ` "$BASE/"` + path
}

func requireCurl(b *testing.B) {
	if _, err := exec.LookPath("curl"); err != nil {
		b.Skip("curl is not installed; the baseline needs it")
	}
}

// runLoop starts the shell loop (as it would run, waiting for events),
// then feeds it the burst's paths and waits for it to finish.
func runLoop(b *testing.B, ws, base, loop string, paths []string) {
	cmd := exec.Command("sh", "-c", loop)
	cmd.Dir = ws
	cmd.Env = append(os.Environ(), "BASE="+base)
	cmd.Stderr = os.Stderr
	stdin, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	if _, err := io.WriteString(stdin, strings.Join(paths, "\n")+"\n"); err != nil {
		b.Fatal(err)
	}
	_ = stdin.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatalf("upload loop: %v", err)
	}
}

// BenchmarkHTTPSyncOneFile measures the latency of a single change on an
// idle system: one hint to the running queue, against one curl spawned for
// the file. ns/op is that latency.
func BenchmarkHTTPSyncOneFile(b *testing.B) {
	b.Run("supervisor", func(b *testing.B) {
		server := newArrivalServer(b)
		ws := b.TempDir()
		q := benchQueue(b, ws, server)
		benchOne(b, server, ws, func(path string) {
			q.Notify(change.Hint{Kind: change.KindPath, Source: change.SourceAgent, Path: path})
		})
	})
	b.Run("curl-per-file", func(b *testing.B) {
		requireCurl(b)
		server := newArrivalServer(b)
		ws := b.TempDir()
		benchOne(b, server, ws, func(path string) {
			cmd := exec.Command("sh", "-c", curlPut(`"$1"`), "upload", path)
			cmd.Dir = ws
			cmd.Env = append(os.Environ(), "BASE="+server.base())
			if err := cmd.Start(); err != nil {
				b.Fatal(err)
			}
			// Reaped after the arrival is timed, as a pipe that
			// backgrounds its uploads would.
			b.Cleanup(func() { _ = cmd.Wait() })
		})
	})
}

func benchOne(b *testing.B, server *arrivalServer, ws string, send func(string)) {
	p := filepath.Join(ws, "one.txt")
	for round := 0; b.Loop(); round++ {
		b.StopTimer()
		if err := os.WriteFile(p, []byte(fmt.Sprintf("round %d\n", round)), 0o644); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		send("one.txt")
		for got := range server.notify {
			if got == "one.txt" {
				break
			}
		}
	}
}
