package main

import (
	"os"
	"runtime/debug"
)

// defaultMemoryLimit is the Go runtime's soft memory limit when GOMEMLIMIT
// is not set. The heap of a big workspace is mostly the manifest's index
// and the queue's entries, live for the whole run, and Go's default GC
// target lets the heap grow to twice that before collecting: 80 MB of RSS
// at 100,000 files. Under this limit the collector runs earlier instead
// and keeps RSS near 50 MB at that size. The trade-off: once the live heap
// nears the limit (several hundred thousand files) the collector runs
// often, at most about half a CPU by the runtime's own cap, and RSS grows
// past the limit rather than fail. GOMEMLIMIT in the environment (a size,
// or "off") replaces it.
const defaultMemoryLimit = 40 << 20

// applyDefaultMemoryLimit sets defaultMemoryLimit unless GOMEMLIMIT is set.
func applyDefaultMemoryLimit() {
	if _, set := os.LookupEnv("GOMEMLIMIT"); set {
		return
	}
	debug.SetMemoryLimit(defaultMemoryLimit)
}
