package main

import (
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/creack/pty"
)

// The benchmarks below put the supervisor beside the two other ways to
// run a container's command: directly, and under tini (Debian package
// tini), the usual minimal init. Every variant writes to the same kind of
// sink, a pty the benchmark reads, as `docker run -t` would.
//
//	make bench-pid1

// launcher builds the command line of one variant around argv.
type launcher struct {
	name string
	wrap func(b *testing.B, argv []string) []string
}

func launchers(b *testing.B) []launcher {
	b.Helper()
	ls := []launcher{{"direct", func(_ *testing.B, argv []string) []string { return argv }}}
	if tini, err := exec.LookPath("tini"); err == nil {
		ls = append(ls, launcher{"tini", func(_ *testing.B, argv []string) []string {
			return append([]string{tini, "-s", "--"}, argv...)
		}})
	} else {
		b.Log("tini not installed (Debian package tini); its variant is left out")
	}
	ls = append(ls, launcher{"supervisor", func(b *testing.B, argv []string) []string {
		ws := b.TempDir()
		return append([]string{supervisorBin, "run", "--workspace", ws, "--listen", "",
			"--sync", "dir:" + filepath.Join(b.TempDir(), "mirror"), "--"}, argv...)
	}})
	return ls
}

// runOnPTY runs argv with a fresh pty as stdout, reads the pty to its end
// and returns how many bytes came out. Stderr, where the supervisor logs,
// is discarded.
func runOnPTY(b *testing.B, argv []string) int64 {
	b.Helper()
	master, slave, err := pty.Open()
	if err != nil {
		b.Fatal(err)
	}
	defer master.Close()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Stdout = slave
	cmd.Env = append(cleanEnv(), quickExit...)
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	_ = slave.Close()
	n, _ := io.Copy(io.Discard, master) // ends with EIO once nobody holds the slave
	if err := cmd.Wait(); err != nil {
		b.Fatalf("%v: %v", argv, err)
	}
	return n
}

// BenchmarkPID1StartUp is the time from starting a command that does
// nothing to its exit: the cost each launcher adds to a container start.
func BenchmarkPID1StartUp(b *testing.B) {
	for _, l := range launchers(b) {
		b.Run(l.name, func(b *testing.B) {
			for b.Loop() {
				runOnPTY(b, l.wrap(b, []string{"true"}))
			}
		})
	}
}

// BenchmarkPID1Throughput1GB has the command write 1 GiB to its terminal
// as fast as it can; under the supervisor the bytes cross its own pty and
// its output fan-out (stdout, the stream-json decoder) on the way.
func BenchmarkPID1Throughput1GB(b *testing.B) {
	const size = 1 << 30
	if _, err := os.Stat("/dev/zero"); err != nil {
		b.Skip("needs /dev/zero")
	}
	for _, l := range launchers(b) {
		b.Run(l.name, func(b *testing.B) {
			b.SetBytes(size)
			for b.Loop() {
				argv := l.wrap(b, []string{"head", "-c", "1073741824", "/dev/zero"})
				if n := runOnPTY(b, argv); n != size {
					b.Fatalf("read %d bytes, want %d", n, size)
				}
			}
		})
	}
}
