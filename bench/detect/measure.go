package main

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/fsnotify/fsnotify"
)

// writeStamped writes the wall-clock time of the write into p.
func writeStamped(p string) error {
	return os.WriteFile(p, strconv.AppendInt(nil, time.Now().UnixNano(), 10), 0o644)
}

// arrivals watches one mirror directory and records, for every file that
// arrives in it, how long after its stamped write it did.
type arrivals struct {
	w    *fsnotify.Watcher
	dir  string
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	latency map[string]time.Duration
	changed chan struct{}
}

func watchArrivals(dir string) (*arrivals, error) {
	w, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	if err := w.Add(dir); err != nil {
		_ = w.Close()
		return nil, err
	}
	a := &arrivals{w: w, dir: dir, stop: make(chan struct{}), done: make(chan struct{}),
		latency: make(map[string]time.Duration), changed: make(chan struct{}, 1)}
	go a.run()
	return a, nil
}

func (a *arrivals) run() {
	defer close(a.done)
	for {
		select {
		case <-a.stop:
			return
		case err := <-a.w.Errors:
			fmt.Fprintln(os.Stderr, "detect: mirror watch:", err)
		case ev := <-a.w.Events:
			// Both tools rename a finished temporary file into place, which
			// inotify reports as a create of the final name.
			name := filepath.Base(ev.Name)
			if !ev.Has(fsnotify.Create) || strings.HasPrefix(name, ".") {
				continue
			}
			a.record(name, ev.Name)
		}
	}
}

func (a *arrivals) record(name, p string) {
	now := time.Now().UnixNano()
	data, err := os.ReadFile(p)
	if err != nil {
		return
	}
	stamp, err := strconv.ParseInt(strings.TrimSpace(string(data)), 10, 64)
	if err != nil {
		return
	}
	a.mu.Lock()
	if _, seen := a.latency[name]; !seen {
		a.latency[name] = time.Duration(now - stamp)
	}
	a.mu.Unlock()
	select {
	case a.changed <- struct{}{}:
	default:
	}
}

// wait returns the latencies once n files have arrived or timeout passed.
func (a *arrivals) wait(n int, timeout time.Duration) []time.Duration {
	deadline := time.After(timeout)
	for {
		a.mu.Lock()
		got := len(a.latency)
		a.mu.Unlock()
		if got >= n {
			break
		}
		select {
		case <-a.changed:
		case <-deadline:
			fmt.Fprintf(os.Stderr, "detect: only %d of %d files arrived in %s\n", got, n, a.dir)
			return a.close()
		}
	}
	return a.close()
}

func (a *arrivals) close() []time.Duration {
	close(a.stop)
	<-a.done
	_ = a.w.Close()
	a.mu.Lock()
	defer a.mu.Unlock()
	out := make([]time.Duration, 0, len(a.latency))
	for _, d := range a.latency {
		out = append(out, d)
	}
	slices.Sort(out)
	return out
}

// quantile returns the q-th quantile of sorted samples, nearest rank.
func quantile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.999999) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}

// countFiles counts the entries of dir that are not temporary (dot) files.
func countFiles(dir string) int {
	f, err := os.Open(dir)
	if err != nil {
		return 0
	}
	defer f.Close()
	names, _ := f.Readdirnames(-1)
	n := 0
	for _, name := range names {
		if !strings.HasPrefix(name, ".") {
			n++
		}
	}
	return n
}

// waitCount polls dir until it holds n files and returns when it saw them.
func waitCount(dir string, n int, timeout time.Duration) (time.Time, error) {
	deadline := time.Now().Add(timeout)
	for {
		if countFiles(dir) >= n {
			return time.Now(), nil
		}
		if time.Now().After(deadline) {
			return time.Time{}, fmt.Errorf("%s holds %d of %d files after %v",
				dir, countFiles(dir), n, timeout)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
