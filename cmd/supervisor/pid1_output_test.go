package main

import (
	"bytes"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"
)

// TestRunOutputOfAChildThatExitsAtOnceArrivesComplete is about the
// supervisor's output path at exit, as PID 1 or not: it does not need a
// PID namespace. A child writes 300 KB, more than a pty or pipe buffer
// holds, and exits the moment it is done; everything must reach stdout and
// the --tee file, in 200 of 200 runs, under a pty and on pipes.
func TestRunOutputOfAChildThatExitsAtOnceArrivesComplete(t *testing.T) {
	data := make([]byte, 300<<10)
	if _, err := rand.Read(data); err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "data")
	if err := os.WriteFile(file, data, 0o600); err != nil {
		t.Fatal(err)
	}
	const runs, parallel = 200, 4

	for _, pty := range []bool{true, false} {
		t.Run(fmt.Sprintf("pty=%v", pty), func(t *testing.T) {
			var mu sync.Mutex
			failures := map[string]int{}
			fail := func(what string) {
				mu.Lock()
				failures[what]++
				mu.Unlock()
			}
			next := make(chan int)
			var wg sync.WaitGroup
			for range parallel {
				wg.Go(func() {
					for range next {
						tee := filepath.Join(t.TempDir(), "tee")
						args := []string{"run", "--sync", "dir:" + filepath.Join(t.TempDir(), "m"),
							"--listen", "", "--tee", tee}
						if !pty {
							args = append(args, "--no-pty")
						}
						sup := startSupervisor(t, t.TempDir(), quickExit,
							append(args, "--", "cat", file)...)
						if code := sup.wait(t, 60*time.Second); code != 0 {
							fail(fmt.Sprintf("exit status %d", code))
						}
						if got := sup.stdout.Bytes(); !bytes.Equal(got, data) {
							fail(fmt.Sprintf("stdout %d of %d bytes", len(got), len(data)))
						}
						if got, err := os.ReadFile(tee); err != nil || !bytes.Equal(got, data) {
							fail(fmt.Sprintf("tee %d of %d bytes (%v)", len(got), len(data), err))
						}
					}
				})
			}
			for i := range runs {
				next <- i
			}
			close(next)
			wg.Wait()
			if len(failures) > 0 {
				t.Errorf("failed runs out of %d: %v", runs, failures)
			}
		})
	}
}
