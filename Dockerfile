# syntax=docker/dockerfile:1
#
# The supervisor as a container's PID 1, running the pinned Claude Code CLI
# as the unprivileged user 1000 in /home/user/workspace (the layout E2B
# sandboxes use). Build:  docker build -t supervisor .
# Run:    docker run --rm -e ANTHROPIC_API_KEY -v "$PWD/mirror:/home/user/mirror" \
#           supervisor claude -p "..." --output-format stream-json --verbose

ARG GO_VERSION=1.26
ARG CLAUDE_CODE_VERSION=2.1.328

# Stage 1: a static supervisor binary.
FROM golang:${GO_VERSION}-bookworm AS build
WORKDIR /src
COPY go.mod go.sum ./
RUN go mod download
COPY cmd ./cmd
COPY internal ./internal
ARG VERSION=dev
RUN CGO_ENABLED=0 go build -trimpath -ldflags "-s -w -X main.version=${VERSION}" \
      -o /out/supervisor ./cmd/supervisor

# Stage 2: the CLI from npm. The package ships a native binary, so Node is
# needed only here, not in the final image.
FROM node:22-bookworm-slim AS claude
ARG CLAUDE_CODE_VERSION
RUN npm install -g --no-audit --no-fund "@anthropic-ai/claude-code@${CLAUDE_CODE_VERSION}" \
 && cp "$(readlink -f /usr/local/lib/node_modules/@anthropic-ai/claude-code/bin/claude.exe)" \
      /out-claude \
 && /out-claude --version

# Stage 3: the runtime image.
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates git bash procps ripgrep \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --uid 1000 --user-group --create-home --shell /bin/bash user
COPY --from=build /out/supervisor /usr/local/bin/supervisor
COPY --from=claude /out-claude /usr/local/bin/claude
COPY scripts/init.sh /usr/local/bin/supervisor-init

USER 1000:1000
WORKDIR /home/user/workspace
ENV SUPERVISOR_WORKSPACE=/home/user/workspace \
    SUPERVISOR_STATE_DIR=/home/user/.supervisor \
    SUPERVISOR_SYNC=dir:/home/user/mirror \
    SUPERVISOR_LISTEN=0.0.0.0:9464 \
    DISABLE_AUTOUPDATER=1
EXPOSE 9464

# Ready means: watcher up, start-up scan done, backend usable.
HEALTHCHECK --interval=10s --timeout=5s --start-period=5s --retries=3 \
  CMD ["supervisor", "health", "--listen", "127.0.0.1:9464"]

# init.sh prepares the workspace and then execs the supervisor, which
# becomes PID 1: the arguments are the command it supervises.
ENTRYPOINT ["/usr/local/bin/supervisor-init"]
CMD ["claude", "--help"]
