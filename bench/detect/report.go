package main

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"time"
)

// report collects the figures of one run and prints them as Markdown.
type report struct {
	head     []string
	latRows  []string
	burstRow []string
	startRow []string
	notes    []string
}

func (r *report) header(o options) {
	r.head = append(r.head,
		"- date: "+time.Now().UTC().Format(time.RFC3339),
		"- machine: "+fmt.Sprintf("%d CPUs, %s", runtime.NumCPU(), firstLine("uname", "-sr")),
		"- load before the run: "+loadAverage(),
		"- supervisor: "+firstLine(o.supervisor, "version"),
		fmt.Sprintf("- latency workloads: %d writes, %v apart", o.writes, o.interval))
	if o.lsyncd {
		r.head = append(r.head, "- lsyncd: "+firstLine("lsyncd", "--version")+
			"; rsync: "+firstLine("rsync", "--version"))
	}
}

func (r *report) latency(workload, tool string, lat []time.Duration, u usage, cpu time.Duration) {
	r.latRows = append(r.latRows, fmt.Sprintf("| %s | %s | %d | %s | %s | %s | %s | %s |",
		workload, tool, len(lat), ms(quantile(lat, 0.5)), ms(quantile(lat, 0.99)),
		ms(quantile(lat, 1)), mb(u.maxRSS), cpu.Round(10*time.Millisecond)))
}

func (r *report) burst(tool string, shell, afterLast time.Duration, u usage, cpu time.Duration) {
	r.burstRow = append(r.burstRow, fmt.Sprintf("| %s | %s | **%s** | %s | %s | %s |",
		tool, ms(shell), ms(afterLast), ms(shell+afterLast), mb(u.maxRSS),
		cpu.Round(10*time.Millisecond)))
}

func (r *report) startup(what string, scan, ready time.Duration, u usage) {
	scanText := "–"
	if scan >= 0 {
		scanText = ms(scan)
	}
	r.startRow = append(r.startRow, fmt.Sprintf("| %s | %s | %s | %s | %s |",
		what, scanText, ms(ready), ms(u.wall), mb(u.maxRSS)))
}

func (r *report) note(s string) { r.notes = append(r.notes, s) }

func (r *report) print(w io.Writer) {
	p := func(lines ...string) {
		for _, l := range lines {
			_, _ = fmt.Fprintln(w, l)
		}
	}
	p(r.head...)
	p(fmt.Sprintf("- load after the run: %s", loadAverage()), "")
	p("| workload | tool | n | p50 | p99 | max | peak RSS | CPU |",
		"|---|---|---|---|---|---|---|---|")
	p(r.latRows...)
	p("", "Burst: one `sh` loop creates the files; times from its start and from its exit.", "",
		"| tool | shell ran | mirrored after the last write | total | peak RSS | CPU |",
		"|---|---|---|---|---|---|")
	p(r.burstRow...)
	p("")
	p(r.notes...)
	p("", "| run | start-up scan | ready | exited | peak RSS |", "|---|---|---|---|---|")
	p(r.startRow...)
}

func ms(d time.Duration) string {
	return fmt.Sprintf("%.1f ms", float64(d)/float64(time.Millisecond))
}

func mb(b int64) string { return fmt.Sprintf("%.1f MB", float64(b)/(1<<20)) }

func firstLine(name string, args ...string) string {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil && len(out) == 0 {
		return "unknown"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}

func loadAverage() string {
	data, err := os.ReadFile("/proc/loadavg")
	if err != nil {
		return "unknown"
	}
	f := strings.Fields(string(data))
	if len(f) < 3 {
		return "unknown"
	}
	return strings.Join(f[:3], " ") + " (1, 5, 15 min)"
}
