// Package metrics owns the supervisor's Prometheus registry, every metric
// the other packages update, and the HTTP server that exposes /metrics and
// the probes (/healthz, /readyz, /status).
//
// It imports none of the supervisor's other packages: they import it and
// update the fields of Metrics directly. Labels are bounded by construction:
// no metric carries a path, a session id or an error text.
package metrics

import (
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

const namespace = "supervisor"

// LatencyBuckets spans a few milliseconds (an agent-confirmed write to a
// local mirror) to tens of seconds (a backend retrying through an outage).
var LatencyBuckets = []float64{
	0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60,
}

// Metrics holds every collector. Create it with New; the zero value is not
// usable.
type Metrics struct {
	Registry *prometheus.Registry

	// Change detection and the queue.
	ChangesDetected *prometheus.CounterVec // source
	QueueDepth      prometheus.Gauge
	PathsSkipped    *prometheus.CounterVec // reason

	// Sync operations.
	SyncOps         *prometheus.CounterVec   // op, result
	SyncLatency     *prometheus.HistogramVec // op
	SyncBytes       prometheus.Counter
	SyncRetries     prometheus.Counter
	SyncUnchanged   prometheus.Counter
	SyncFailedPaths prometheus.Gauge
	// SyncOldestPending is the age of the oldest change not yet synced,
	// read from the queue at scrape time.
	SyncOldestPending *SampledGauge
	// SyncBackendUp is 1 while the backend's last health check passed.
	SyncBackendUp prometheus.Gauge

	// The watcher.
	WatcherOverflows   prometheus.Counter
	WatcherErrors      prometheus.Counter
	Rescans            *prometheus.CounterVec // reason
	WatchedDirectories prometheus.Gauge
	// WatcherDegraded is 1 while changes can go unseen by the watcher,
	// read from the watcher at scrape time.
	WatcherDegraded *SampledGauge

	// The child process.
	ChildRunning     prometheus.Gauge
	ChildExitCode    prometheus.Gauge
	ChildStarts      prometheus.Counter
	ChildOutputBytes prometheus.Counter
	ChildExits       *prometheus.CounterVec // outcome

	// The agent's stream-json output.
	AgentEvents      *prometheus.CounterVec // type
	AgentParseErrors *prometheus.CounterVec // reason
	AgentToolUses    *prometheus.CounterVec // tool
	AgentToolErrors  *prometheus.CounterVec // tool
	AgentPathsDrop   *prometheus.CounterVec // reason
	AgentSessions    *prometheus.CounterVec // outcome
	AgentCost        prometheus.Counter
	AgentTokens      *prometheus.CounterVec // kind
	AgentTurns       prometheus.Counter

	// Ready is 1 while /readyz answers 200, read at scrape time.
	Ready *SampledGauge
}

// Outcomes of a child's exit, the labels of ChildExits.
const (
	ExitSuccess    = "success"     // status 0
	ExitFailure    = "failure"     // any other status the child chose
	ExitSignal     = "signal"      // killed by a signal (status 128+N)
	ExitNotStarted = "not_started" // not found or not executable (127, 126)
)

// New returns a Metrics registered on a registry of its own, with the Go
// runtime and process collectors.
func New() *Metrics {
	m := &Metrics{Registry: prometheus.NewRegistry()}

	m.ChangesDetected = counterVec("", "changes_detected_total",
		"Change hints received, by the source that noticed them.", "source")
	m.QueueDepth = gauge("sync", "queue_depth",
		"Paths waiting in the change queue or being synced.")
	m.PathsSkipped = counterVec("sync", "paths_skipped_total",
		"Paths never synced, by reason (git, state_dir, ignored, symlink, "+
			"too_large, not_regular).", "reason")

	m.SyncOps = counterVec("sync", "operations_total",
		"Backend operations by op (put, delete) and result (success, failure).",
		"op", "result")
	m.SyncLatency = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: namespace, Subsystem: "sync", Name: "latency_seconds",
		Help:    "Time from the first detection of a change to the backend's success.",
		Buckets: LatencyBuckets,
	}, []string{"op"})
	m.SyncBytes = counter("sync", "bytes_total", "File content bytes sent to the backend.")
	m.SyncRetries = counter("sync", "retries_total", "Backend operations retried after a failure.")
	m.SyncUnchanged = counter("sync", "unchanged_total",
		"Changes dropped because the content equals the last synced content.")
	m.SyncFailedPaths = gauge("sync", "failed_paths",
		"Paths whose last operation failed and that wait for a retry.")
	m.SyncOldestPending = newSampledGauge("sync", "oldest_pending_age_seconds",
		"Age of the oldest detected change not yet synced; 0 when the queue is empty.")
	m.SyncBackendUp = gauge("sync", "backend_up",
		"1 while the backend's last health check passed, 0 otherwise.")

	m.WatcherOverflows = counter("watcher", "overflows_total",
		"Kernel event queue overflows; each schedules a rescan.")
	m.WatcherErrors = counter("watcher", "errors_total", "Errors reported by the watcher.")
	m.Rescans = counterVec("watcher", "rescans_total",
		"Full or partial rescans against the manifest, by reason.", "reason")
	m.WatchedDirectories = gauge("watcher", "watched_directories",
		"Directories with an inotify watch.")
	m.WatcherDegraded = newSampledGauge("watcher", "degraded",
		"1 while some changes can go unseen (watch limit reached, event stream lost); "+
			"/status says why.")

	m.ChildRunning = gauge("child", "running", "1 while the supervised command runs.")
	m.ChildExitCode = gauge("child", "exit_code",
		"Exit status of the last child as the supervisor reports it (128+N for signal N); "+
			"-1 before the first exit.")
	m.ChildExitCode.Set(-1)
	m.ChildStarts = counter("child", "starts_total", "Times the supervised command was started.")
	m.ChildOutputBytes = counter("child", "output_bytes_total",
		"Bytes the child wrote to its terminal or pipes.")
	m.ChildExits = counterVec("child", "exits_total",
		"Exits of the supervised command by outcome (success, failure, signal, "+
			"not_started).", "outcome")

	m.AgentEvents = counterVec("agent", "events_total",
		"Stream-json lines decoded, by type.", "type")
	m.AgentParseErrors = counterVec("agent", "parse_errors_total",
		"Output lines skipped, by reason (not_json, too_long, truncated, bad_field).", "reason")
	m.AgentToolUses = counterVec("agent", "tool_uses_total",
		"Tool calls the agent made, by tool.", "tool")
	m.AgentToolErrors = counterVec("agent", "tool_errors_total",
		"Tool results that reported an error, by tool.", "tool")
	m.AgentPathsDrop = counterVec("agent", "paths_dropped_total",
		"File tool paths not queued, by reason (outside, invalid).", "reason")
	m.AgentSessions = counterVec("agent", "sessions_total",
		"Agent sessions that printed a result line, by outcome (success, error).", "outcome")
	m.AgentCost = counter("agent", "cost_usd_total", "Cost the agent reported, in US dollars.")
	m.AgentTokens = counterVec("agent", "tokens_total",
		"Tokens the agent reported, by kind (input, output, cache_read, cache_creation).",
		"kind")
	m.AgentTurns = counter("agent", "turns_total", "Turns the agent reported in result lines.")
	m.Ready = newSampledGauge("", "ready",
		"1 while /readyz answers 200: watcher up, start-up scan done, backend usable.")

	m.Registry.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
		m.ChangesDetected, m.QueueDepth, m.PathsSkipped,
		m.SyncOps, m.SyncLatency, m.SyncBytes, m.SyncRetries, m.SyncUnchanged,
		m.SyncFailedPaths, m.SyncOldestPending, m.SyncBackendUp,
		m.WatcherOverflows, m.WatcherErrors, m.Rescans, m.WatchedDirectories,
		m.WatcherDegraded,
		m.ChildRunning, m.ChildExitCode, m.ChildStarts, m.ChildOutputBytes, m.ChildExits,
		m.AgentEvents, m.AgentParseErrors, m.AgentToolUses, m.AgentToolErrors,
		m.AgentPathsDrop, m.AgentSessions, m.AgentCost, m.AgentTokens, m.AgentTurns,
		m.Ready,
	)
	m.precreate()
	return m
}

// Label values created at start. They mirror constants of the packages
// that update the metrics (which this package cannot import); a value
// missing here still works, it only appears at its first use.
var (
	rescanReasons = []string{"startup", "final", "overflow", "watch_error", "watch_limit",
		"unwatched"}
	skipReasons = []string{"git", "state_dir", "ignored", "symlink", "too_large",
		"not_regular"}
	exitOutcomes = []string{ExitSuccess, ExitFailure, ExitSignal, ExitNotStarted}
)

// precreate makes the series that dashboards and alerts expect exist at 0
// before the first event, so rate() and absent() behave from the start and
// the number of series stays the same however much work is done.
func (m *Metrics) precreate() {
	for _, s := range []string{"agent", "fs", "scan"} {
		m.ChangesDetected.WithLabelValues(s)
	}
	for _, r := range rescanReasons {
		m.Rescans.WithLabelValues(r)
	}
	for _, r := range skipReasons {
		m.PathsSkipped.WithLabelValues(r)
	}
	for _, o := range exitOutcomes {
		m.ChildExits.WithLabelValues(o)
	}
	for _, op := range []string{"put", "delete"} {
		m.SyncLatency.WithLabelValues(op)
		for _, r := range []string{"success", "failure"} {
			m.SyncOps.WithLabelValues(op, r)
		}
	}
	for _, k := range []string{"input", "output", "cache_read", "cache_creation"} {
		m.AgentTokens.WithLabelValues(k)
	}
	for _, o := range []string{"success", "error"} {
		m.AgentSessions.WithLabelValues(o)
	}
}

func counter(subsystem, name, help string) prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: name, Help: help,
	})
}

func counterVec(subsystem, name, help string, labels ...string) *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: namespace, Subsystem: subsystem, Name: name, Help: help,
	}, labels)
}

func gauge(subsystem, name, help string) prometheus.Gauge {
	return prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: namespace, Subsystem: subsystem, Name: name, Help: help,
	})
}

// SampledGauge is a gauge read from a function at scrape time. It suits a
// figure that changes with time alone (the age of the oldest pending
// change) or that another component already keeps (the watcher's state),
// where a value pushed on every change would be stale or duplicated. It
// reads 0 until Sample installs its function.
type SampledGauge struct {
	desc   *prometheus.Desc
	sample atomic.Pointer[func() float64]
}

func newSampledGauge(subsystem, name, help string) *SampledGauge {
	fq := prometheus.BuildFQName(namespace, subsystem, name)
	return &SampledGauge{desc: prometheus.NewDesc(fq, help, nil, nil)}
}

// Sample makes fn the source of the gauge's value. fn runs on every scrape,
// concurrently with everything else, so it must be cheap and safe.
func (g *SampledGauge) Sample(fn func() float64) { g.sample.Store(&fn) }

// Value returns what a scrape would report now.
func (g *SampledGauge) Value() float64 {
	if fn := g.sample.Load(); fn != nil {
		return (*fn)()
	}
	return 0
}

// Describe implements prometheus.Collector.
func (g *SampledGauge) Describe(ch chan<- *prometheus.Desc) { ch <- g.desc }

// Collect implements prometheus.Collector.
func (g *SampledGauge) Collect(ch chan<- prometheus.Metric) {
	ch <- prometheus.MustNewConstMetric(g.desc, prometheus.GaugeValue, g.Value())
}

// Bool converts a condition to a gauge value.
func Bool(b bool) float64 {
	if b {
		return 1
	}
	return 0
}
