package metrics

import (
	"encoding/json"
	"os"
	"regexp"
	"sort"
	"testing"
)

// metricName matches the supervisor's metric names in PromQL text.
var metricName = regexp.MustCompile(`\bsupervisor_[a-z_]+\b`)

// TestDeployFilesUseOnlyExportedMetrics reads the alerting rules and the
// Grafana dashboard and checks that every supervisor_ name they query is
// one this package exports, so a renamed metric cannot leave an alert
// that never fires or a panel that stays empty.
func TestDeployFilesUseOnlyExportedMetrics(t *testing.T) {
	exported := exportedNames(t)

	rules, err := os.ReadFile("../../deploy/prometheus/rules.yml")
	if err != nil {
		t.Fatal(err)
	}
	checkNames(t, "deploy/prometheus/rules.yml", metricName.FindAllString(string(rules), -1),
		exported)

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
		t.Fatalf("dashboard: %v", err)
	}
	queried := map[string]bool{}
	for _, p := range dashboard.Panels {
		for _, target := range p.Targets {
			names := metricName.FindAllString(target.Expr, -1)
			checkNames(t, "dashboard panel "+p.Title, names, exported)
			for _, n := range names {
				queried[n] = true
			}
		}
	}

	// The panels the issue asks for: queue depth, sync rate and failures,
	// the latency heatmap, agent cost and tokens, child restarts and exits.
	for _, n := range []string{
		"supervisor_sync_queue_depth", "supervisor_sync_operations_total",
		"supervisor_sync_latency_seconds_bucket", "supervisor_agent_cost_usd_total",
		"supervisor_agent_tokens_total", "supervisor_child_starts_total",
		"supervisor_child_exits_total", "supervisor_child_exit_code",
	} {
		if !queried[n] {
			t.Errorf("the dashboard has no panel on %s", n)
		}
	}
}

// exportedNames lists every series name the registry exposes, histogram
// suffixes included.
func exportedNames(t *testing.T) map[string]bool {
	t.Helper()
	families, err := touched().Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		names[f.GetName()] = true
		if f.GetType().String() == "HISTOGRAM" {
			for _, suffix := range []string{"_bucket", "_count", "_sum"} {
				names[f.GetName()+suffix] = true
			}
		}
	}
	return names
}

func checkNames(t *testing.T, where string, names []string, exported map[string]bool) {
	t.Helper()
	var unknown []string
	for _, n := range names {
		if !exported[n] {
			unknown = append(unknown, n)
		}
	}
	sort.Strings(unknown)
	if len(unknown) > 0 {
		t.Errorf("%s queries metrics that do not exist: %v", where, unknown)
	}
}
