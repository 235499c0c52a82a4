# The E2B template: the project's image (../../Dockerfile), pushed where E2B
# can pull it, with the daemon as the start command instead of the
# entrypoint. E2B runs the start command given in template.ts once, at the
# end of the template build, and snapshots the sandbox with it running.
ARG SUPERVISOR_IMAGE=ghcr.io/agent-supervisor/supervisor:latest
FROM ${SUPERVISOR_IMAGE}

# E2B starts processes itself; the container entrypoint is not used.
ENTRYPOINT []

USER 1000:1000
WORKDIR /home/user/workspace

# Settings every run inherits unless its submit says otherwise. Secrets do
# not belong here: the snapshot would keep them. They come with each
# submit (SUPERVISOR_SYNC_TOKEN in the sandbox's envs, or --sync-token-file).
ENV SUPERVISOR_WORKSPACE=/home/user/workspace \
    SUPERVISOR_STATE_DIR=/home/user/.supervisor \
    SUPERVISOR_SYNC=dir:/home/user/mirror \
    SUPERVISOR_LISTEN=127.0.0.1:9464 \
    SUPERVISOR_SOCKET=/home/user/.supervisor-run/control.sock \
    DISABLE_AUTOUPDATER=1
