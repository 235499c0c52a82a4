package main

import (
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"time"
)

// healthCommand asks a running supervisor's /readyz whether it is ready.
// It serves as Docker HEALTHCHECK, an E2B ready command and a Kubernetes
// exec probe: exit 0 when ready, 1 with the reason otherwise.
func healthCommand(args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("health", flag.ContinueOnError)
	fs.SetOutput(stderr)
	listen := fs.String("listen", defaultListen,
		"address of the supervisor's HTTP server (env SUPERVISOR_LISTEN)")
	timeout := fs.Duration("timeout", 3*time.Second, "how long to wait for an answer")
	if err := parseWithEnv(fs, args); err != nil {
		return exitUsage
	}
	if *listen == "" {
		_, _ = fmt.Fprintln(stderr, "supervisor health: --listen is empty: the HTTP server is disabled")
		return 1
	}

	client := &http.Client{Timeout: *timeout}
	resp, err := client.Get("http://" + *listen + "/readyz")
	if err != nil {
		_, _ = fmt.Fprintf(stderr, "supervisor health: not ready: %v\n", err)
		return 1
	}
	defer func() { _ = resp.Body.Close() }()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	text := strings.TrimSpace(string(body))
	if resp.StatusCode != http.StatusOK {
		_, _ = fmt.Fprintf(stderr, "supervisor health: %s\n", text)
		return 1
	}
	_, _ = fmt.Fprintln(stdout, text)
	return 0
}
