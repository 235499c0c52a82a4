package main

import (
	"testing"
	"time"

	"github.com/hashicorp/go-hclog"

	"github.com/agent-supervisor/supervisor/internal/agent"
)

func TestWatchdogDecidesFromOutputAndResultTimes(t *testing.T) {
	start := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(d time.Duration) time.Time { return start.Add(d) }
	const none = -1 // no result line

	cases := []struct {
		name        string
		idle, after time.Duration
		lastOutput  time.Duration // since start
		result      time.Duration // since start, or none
		resultErr   bool
		now         time.Duration
		want        *verdict
	}{
		{"output within the idle timeout", time.Second, 0, 500 * time.Millisecond, none,
			false, 1400 * time.Millisecond, nil},
		{"silent for the idle timeout", time.Second, 0, 500 * time.Millisecond, none,
			false, 1500 * time.Millisecond, &verdict{"idle", exitIdle}},
		{"idle watchdog off", 0, 0, 0, none, false, time.Hour, nil},
		{"result line, not yet overdue", 0, time.Second, 0, 2 * time.Second,
			false, 2900 * time.Millisecond, nil},
		{"successful result overdue", 0, time.Second, 0, 2 * time.Second,
			false, 3 * time.Second, &verdict{"after_result", 0}},
		{"error result overdue", 0, time.Second, 0, 2 * time.Second,
			true, 3 * time.Second, &verdict{"after_result", exitResultError}},
		{"result watchdog off", 0, 0, 0, 2 * time.Second, false, time.Hour, nil},
		{"silent after the result line waits for the result watchdog", time.Second,
			time.Minute, 0, 0, false, 30 * time.Second, nil},
		{"result watchdog wins over idleness", time.Second, time.Second, 0, 0,
			false, 5 * time.Second, &verdict{"after_result", 0}},
		{"silent after the result line with only the idle watchdog", time.Second, 0,
			0, 0, false, time.Second, &verdict{"idle", exitIdle}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			w := newWatchdog(tc.idle, tc.after, hclog.NewNullLogger())
			w.now = func() time.Time { return at(tc.lastOutput) }
			_, _ = w.Write([]byte("x"))
			if tc.result != none {
				w.now = func() time.Time { return at(tc.result) }
				w.result(agent.Session{ResultSeen: true, IsError: tc.resultErr})
			}

			got, ok := w.due(at(tc.now))
			switch {
			case tc.want == nil && ok:
				t.Errorf("due = %+v, want no verdict", got)
			case tc.want != nil && (!ok || got != *tc.want):
				t.Errorf("due = %+v, %v; want %+v", got, ok, *tc.want)
			}
		})
	}
}

func TestWatchdogStopsTheChildOnceAndGivesItsExitStatus(t *testing.T) {
	w := newWatchdog(20*time.Millisecond, 0, hclog.NewNullLogger())
	stops := make(chan struct{}, 10)
	finish := w.watch(func() error {
		stops <- struct{}{}
		return nil
	})
	// Nothing is written: the child is silent from its start.
	select {
	case <-stops:
	case <-time.After(10 * time.Second):
		t.Fatal("the idle watchdog never stopped the silent child")
	}
	if code := finish(143); code != exitIdle {
		t.Errorf("exit status = %d, want %d after an idle stop", code, exitIdle)
	}
	if n := len(stops); n != 0 {
		t.Errorf("child stopped %d more times, want once", n)
	}
}

func TestWatchdogLeavesTheChildStatusAloneWhenItNeverFired(t *testing.T) {
	w := newWatchdog(time.Hour, time.Hour, hclog.NewNullLogger())
	finish := w.watch(func() error {
		t.Error("the child was stopped")
		return nil
	})
	if code := finish(3); code != 3 {
		t.Errorf("exit status = %d, want the child's 3", code)
	}
}
