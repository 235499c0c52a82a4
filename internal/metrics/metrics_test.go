package metrics

import (
	"strings"
	"testing"

	"github.com/prometheus/client_golang/prometheus/testutil"
)

// TestMetricsFollowPrometheusNamingConventions lints every supervisor_
// family the way `promtool check metrics` does: base units, _total on
// counters, help text on every family.
func TestMetricsFollowPrometheusNamingConventions(t *testing.T) {
	m := New()
	problems, err := testutil.GatherAndLint(m.Registry)
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range problems {
		t.Errorf("%s: %s", p.Metric, p.Text)
	}
}

// TestLabelsAreBoundedByConstruction lists every label name the supervisor's
// own metrics use: each names a small fixed set, never a path, a session id
// or an error text.
func TestLabelsAreBoundedByConstruction(t *testing.T) {
	bounded := map[string]bool{
		"source": true, "reason": true, "op": true, "result": true,
		"tool": true, "type": true, "outcome": true, "kind": true,
	}
	families, err := touched().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	own := 0
	for _, f := range families {
		if !strings.HasPrefix(f.GetName(), namespace+"_") {
			continue
		}
		own++
		for _, metric := range f.GetMetric() {
			for _, l := range metric.GetLabel() {
				if !bounded[l.GetName()] {
					t.Errorf("%s has label %q, which is not one of the bounded sets",
						f.GetName(), l.GetName())
				}
			}
		}
	}
	if own < 30 {
		t.Errorf("gathered %d supervisor_ families; the set has more than 30", own)
	}
}

// TestSeriesDashboardsUseExistBeforeTheFirstEvent checks that series alerts
// and dashboards rate() over are present at zero from the start.
func TestSeriesDashboardsUseExistBeforeTheFirstEvent(t *testing.T) {
	m := New()
	for _, tc := range []struct {
		family string
		want   int
	}{
		{"supervisor_changes_detected_total", 3},
		{"supervisor_sync_operations_total", 4},
		{"supervisor_sync_latency_seconds", 2},
		{"supervisor_watcher_rescans_total", len(rescanReasons)},
		{"supervisor_sync_paths_skipped_total", len(skipReasons)},
		{"supervisor_child_exits_total", 4},
		{"supervisor_agent_tokens_total", 4},
		{"supervisor_agent_sessions_total", 2},
		{"supervisor_sync_oldest_pending_age_seconds", 1},
		{"supervisor_watcher_degraded", 1},
		{"supervisor_ready", 1},
	} {
		got, err := testutil.GatherAndCount(m.Registry, tc.family)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s has %d series at start, want %d", tc.family, got, tc.want)
		}
	}
}

// TestSampledGaugeReadsItsSourceOnEveryScrape shows that a sampled gauge
// reports 0 until its source is installed, then whatever the source says at
// the moment of the scrape.
func TestSampledGaugeReadsItsSourceOnEveryScrape(t *testing.T) {
	m := New()
	if got := testutil.ToFloat64(m.SyncOldestPending); got != 0 {
		t.Errorf("before Sample: %v, want 0", got)
	}
	age := 1.5
	m.SyncOldestPending.Sample(func() float64 { return age })
	if got := testutil.ToFloat64(m.SyncOldestPending); got != 1.5 {
		t.Errorf("after Sample: %v, want 1.5", got)
	}
	age = 42
	if got := testutil.ToFloat64(m.SyncOldestPending); got != 42 {
		t.Errorf("after the source changed: %v, want 42", got)
	}
	m.WatcherDegraded.Sample(func() float64 { return Bool(true) })
	if got := testutil.ToFloat64(m.WatcherDegraded); got != 1 {
		t.Errorf("degraded watcher: %v, want 1", got)
	}
}

// touched returns a Metrics whose families without precreated series have
// one, so that a gather shows every family with its labels.
func touched() *Metrics {
	m := New()
	m.AgentEvents.WithLabelValues("system").Inc()
	m.AgentParseErrors.WithLabelValues("not_json").Inc()
	m.AgentToolUses.WithLabelValues("Write").Inc()
	m.AgentToolErrors.WithLabelValues("Write").Inc()
	m.AgentPathsDrop.WithLabelValues("outside").Inc()
	return m
}
