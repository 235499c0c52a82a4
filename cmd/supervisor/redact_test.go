package main

import (
	"strings"
	"testing"
	"time"
)

func TestSyncTargetCredentialsAppearNowhere(t *testing.T) {
	ws := t.TempDir()
	targets := []string{
		"https://alice:s3cret@127.0.0.1:1/files?token=abc",
		"https://127.0.0.1:1/files?token=abc",
		"https://alice:s3cret@127.0.0.1:x/files?token=abc",
		"htps://alice:s3cret@127.0.0.1/files?token=abc",
	}
	for _, target := range targets {
		s := startSupervisor(t, ws, nil, "run", "--listen=", "--log-level=trace",
			"--sync", target, "--", "true")
		if code := s.wait(t, 20*time.Second); code == 0 {
			t.Errorf("--sync %q: exit 0, want the target refused", target)
		}
		out := s.stdout.String() + s.stderr.String()
		if !strings.Contains(out, "REDACTED") {
			t.Errorf("--sync %q: output does not name the target redacted:\n%s", target, out)
		}
		for _, secret := range []string{"s3cret", "abc"} {
			if strings.Contains(out, secret) {
				t.Errorf("--sync %q: output shows %q:\n%s", target, secret, out)
			}
		}
	}
}
