package sync

import (
	"strings"
	"testing"
)

func TestRedactTargetHidesUserinfoQueryValuesAndFragment(t *testing.T) {
	tests := []struct {
		target, want string
	}{
		{"dir:/mirror", "dir:/mirror"},
		{"exec:upload {path}", "exec:upload {path}"},
		{"https://host/files", "https://host/files"},
		{"https://alice:s3cret@host/files?token=abc",
			"https://REDACTED@host/files?token=REDACTED"},
		{"https://alice@host", "https://REDACTED@host"},
		{"http://host/b?sig=abc&exp=1&abc", "http://host/b?sig=REDACTED&exp=REDACTED&REDACTED"},
		{"http://host/b#abc", "http://host/b#REDACTED"},
		{"https://alice:s3cret@ho st/files?token=abc#frag",
			"https://REDACTED@ho st/files?token=REDACTED#REDACTED"},
		{"https://host/a@b", "https://host/a@b"},
	}
	for _, tt := range tests {
		if got := RedactTarget(tt.target); got != tt.want {
			t.Errorf("RedactTarget(%q) = %q, want %q", tt.target, got, tt.want)
		}
	}
}

func TestOpenTargetErrorsNeverQuoteCredentials(t *testing.T) {
	targets := []string{
		"https://alice:s3cret@host/files?token=abc",
		"https://host/files?token=abc",
		"https://alice:s3cret@ho st/files?token=abc",
		"https://alice:s3cret@host:99x/files?token=abc",
		"https://alice:s3cret@host/files#abc",
		"htps://alice:s3cret@host/files?token=abc",
	}
	for _, target := range targets {
		_, err := OpenTarget(target, TargetOptions{})
		if err == nil {
			t.Errorf("OpenTarget(%q) succeeded, want an error", target)
			continue
		}
		for _, secret := range []string{"s3cret", "abc"} {
			if strings.Contains(err.Error(), secret) {
				t.Errorf("OpenTarget(%q) error quotes %q: %v", target, secret, err)
			}
		}
	}
}
