# The one place that pins the Claude Code CLI used by tests, the demo and
# the Dockerfile's default.
CLAUDE_CODE_VERSION := 2.1.328
STATICCHECK_VERSION := v0.8.2

TOOLS      := $(CURDIR)/.tools
CLAUDE_BIN ?= $(TOOLS)/claude/node_modules/.bin/claude
VERSION    ?= $(shell git describe --always --dirty 2>/dev/null || echo dev)
GO_LDFLAGS := -s -w -X main.version=$(VERSION)

export CLAUDE_BIN

.PHONY: all build demo test test-short check lint promtool claude clean

all: build

build:
	CGO_ENABLED=0 go build -trimpath -ldflags '$(GO_LDFLAGS)' -o bin/supervisor ./cmd/supervisor
	go build -o bin/fakeapi ./cmd/fakeapi

## demo: run the real Claude Code CLI under the supervisor against the
## embedded scripted Messages API (no account, no API key) and show the mirror.
demo: build claude
	scripts/demo.sh

## test: every test, with the race detector, including the end-to-end tests
## that drive the real CLI (installed by `make claude`).
test: claude
	go test -race -count=1 -timeout 20m ./...

## bench-sync: the queue and HTTP backend against the pipe they replace (a
## shell loop spawning curl per file), on a loopback server; see BENCHMARKS.md.
.PHONY: bench-sync
bench-sync:
	go test -run '^$$' -bench 'HTTPSync' -benchtime 3x -count 1 ./internal/sync

## bench-detect: change detection, write to mirror: Go benchmarks of the
## watcher and queue, then whole-process runs of the supervisor beside lsyncd
## (Debian packages lsyncd and rsync) on the same workloads; see BENCHMARKS.md.
.PHONY: bench-detect
bench-detect: build
	go test -run '^$$' -bench 'WriteToHint|HintToMirror' -benchtime 300x -count 1 \
	  ./internal/watch ./internal/sync
	go test -run '^$$' -count 1 \
	  -bench '^Benchmark(BurstOf1000HintsToMirror|ScanOf10000UnchangedFiles|NotifyOnePath)$$' \
	  ./internal/sync
	go build -o bin/bench-detect ./bench/detect
	bin/bench-detect -supervisor bin/supervisor

## bench-pid1: the supervisor's added start-up time and its throughput when the
## child writes 1 GiB to the pty, beside the same child run directly and under
## tini (Debian package tini), in one run; see BENCHMARKS.md.
.PHONY: bench-pid1
bench-pid1:
	uptime
	go test -run '^$$' -bench '^BenchmarkPID1StartUp$$' -benchtime 100x -count 1 ./cmd/supervisor
	go test -run '^$$' -bench '^BenchmarkPID1Throughput1GB$$' -benchtime 1x -count 1 ./cmd/supervisor
	uptime

## test-short: unit tests only; no CLI needed.
test-short:
	go test -race -count=1 -short ./...

check: lint promtool
	go vet ./...
	@unformatted="$$(gofmt -l $$(git ls-files '*.go'))"; \
	  if [ -n "$$unformatted" ]; then echo "gofmt would change:"; echo "$$unformatted"; exit 1; fi
	shellcheck scripts/*.sh .ci/run

lint:
	@command -v staticcheck >/dev/null 2>&1 || go install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)
	staticcheck ./...

## promtool: validate the Prometheus scrape configuration and alerting rules
## in deploy/prometheus and run the rules' unit tests (Debian package prometheus).
promtool:
	promtool check config deploy/prometheus/prometheus.yml
	promtool check rules deploy/prometheus/rules.yml
	cd deploy/prometheus && promtool test rules rules_test.yml

## claude: install the pinned Claude Code CLI into .tools (npm; a native binary,
## Node is only needed to install it).
claude: $(CLAUDE_BIN)

$(CLAUDE_BIN):
	mkdir -p $(TOOLS)/claude
	cd $(TOOLS)/claude && npm install --no-audit --no-fund --loglevel=error \
	  @anthropic-ai/claude-code@$(CLAUDE_CODE_VERSION)
	$(CLAUDE_BIN) --version

clean:
	rm -rf bin
