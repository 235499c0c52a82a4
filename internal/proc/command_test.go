package proc

import (
	"errors"
	"os"
	"path/filepath"
	"testing"
)

func TestLookPathSearchesLikeAShell(t *testing.T) {
	// bin1 has a directory and a non-executable file named like commands;
	// bin2 has the executables.
	root := t.TempDir()
	bin1, bin2 := filepath.Join(root, "bin1"), filepath.Join(root, "bin2")
	for _, f := range []struct {
		path string
		mode os.FileMode
	}{
		{filepath.Join(bin1, "tool"), 0o755 | os.ModeDir},
		{filepath.Join(bin1, "script"), 0o644},
		{filepath.Join(bin2, "tool"), 0o755},
		{filepath.Join(bin2, "script"), 0o755},
		{filepath.Join(bin1, "plain"), 0o644},
	} {
		mustCreate(t, f.path, f.mode)
	}
	path := "PATH=" + bin1 + ":" + bin2

	cases := []struct {
		name     string
		env      []string
		want     string
		wantCode int
	}{
		{"tool", []string{path}, filepath.Join(bin2, "tool"), 0},
		{"script", []string{path}, filepath.Join(bin2, "script"), 0},
		{"plain", []string{path}, "", ExitCannotExecute},
		{"absent", []string{path}, "", ExitNotFound},
		{"", []string{path}, "", ExitNotFound},
		{"tool", []string{"PATH=" + bin1}, "", ExitNotFound},
		{"tool", []string{"PATH=/nowhere", path}, filepath.Join(bin2, "tool"), 0},
	}
	for _, tc := range cases {
		got, err := LookPath(tc.name, tc.env)
		code := 0
		var startErr *StartError
		if errors.As(err, &startErr) {
			code = startErr.Code
		} else if err != nil {
			t.Errorf("LookPath(%q, %q): %v is not a *StartError", tc.name, tc.env, err)
		}
		if got != tc.want || code != tc.wantCode {
			t.Errorf("LookPath(%q, %q) = %q, code %d; want %q, code %d",
				tc.name, tc.env, got, code, tc.want, tc.wantCode)
		}
	}
}

func TestLookPathTreatsAnEmptyPATHEntryAsTheCurrentDirectory(t *testing.T) {
	dir := t.TempDir()
	mustCreate(t, filepath.Join(dir, "local"), 0o755)
	t.Chdir(dir)

	got, err := LookPath("local", []string{"PATH=/nowhere:"})
	if err != nil || got != "./local" {
		t.Errorf("LookPath = %q, %v; want ./local", got, err)
	}
}

func TestStartRejectsAMissingWorkingDirectoryWith126(t *testing.T) {
	_, _, err := testReaper.Start(Command{
		Argv: []string{"true"},
		Dir:  filepath.Join(t.TempDir(), "gone"),
	})
	var startErr *StartError
	if !errors.As(err, &startErr) || startErr.Code != ExitCannotExecute {
		t.Errorf("Start error = %v, want a *StartError with code 126", err)
	}
}

func mustCreate(t *testing.T, path string, mode os.FileMode) {
	t.Helper()
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		t.Fatal(err)
	}
	if mode.IsDir() {
		if err := os.Mkdir(path, mode.Perm()); err != nil {
			t.Fatal(err)
		}
		return
	}
	if err := os.WriteFile(path, []byte("#!/bin/sh\n"), mode.Perm()); err != nil {
		t.Fatal(err)
	}
}
