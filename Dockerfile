# syntax=docker/dockerfile:1.7
#
# One image for every Switchboard service and command: `switchboard serve <service>`,
# `switchboard migrate`, `switchboard seed --demo`, `switchboard dlq …`.
#
#   docker build -t switchboard .
#   docker run --rm -p 8080-8083:8080-8083 -p 8090:8090 --env-file .env switchboard   # serve all
#   docker run --rm --env-file .env switchboard migrate
#
# Needs BuildKit (the default builder of Docker 23+ and of `docker compose`): the build uses
# bind and cache mounts. Stages: web (the dashboard), build (the Rust binary), runtime (Debian
# slim, non-root).

ARG RUST_VERSION=1.95
ARG NODE_VERSION=22
ARG DEBIAN_RELEASE=bookworm

# --- web: the dashboard -------------------------------------------------------------------
# web/dist, which the api embeds (services/api/src/web.rs). Node from the official Debian-based
# image: Vite 8 needs Node 20.19+ and bookworm's own nodejs is 18. `npm ci` installs exactly
# package-lock.json from the npm registry (its cache kept across builds); `npm run build`
# type-checks, bundles and fails if the bundle passes its 150 KB gzipped budget.
FROM node:${NODE_VERSION}-${DEBIAN_RELEASE}-slim AS web
WORKDIR /src/web
COPY web/package.json web/package-lock.json ./
RUN --mount=type=cache,target=/root/.npm \
    npm ci --no-audit --no-fund --loglevel=error
COPY web/ ./
RUN npm run build

# --- build: the switchboard binary --------------------------------------------------------
FROM rust:${RUST_VERSION}-slim-${DEBIAN_RELEASE} AS build
# aws-lc-sys (rustls' crypto) compiles C with the gcc the slim image has; no cmake needed on
# x86_64 or aarch64 Linux.
WORKDIR /src
# Only what the binary is built from: the workspace manifests, the crates, the migrations
# (embedded by sqlx::migrate!) and the query data of the compile-time checked SQL (.sqlx/, read
# offline as .cargo/config.toml says). tests/, docs/, infra/ stay out, so editing them keeps the
# cache.
COPY Cargo.toml Cargo.lock ./
COPY .cargo ./.cargo
COPY .sqlx ./.sqlx
COPY services ./services
COPY migrations ./migrations
COPY --from=web /src/web/dist ./web/dist
# Dependencies are cached across builds in BuildKit cache mounts (the registry and target/);
# the cached target/ is not part of the layer, so the binary is copied out of it.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p switchboard \
 && install -D -m 0755 target/release/switchboard /out/switchboard

# --- runtime ------------------------------------------------------------------------------
FROM debian:${DEBIAN_RELEASE}-slim AS runtime
# ca-certificates: TLS to model providers, managed Postgres (sslmode=require) and rediss://.
# curl: the HEALTHCHECK (the binary has no probe command yet). bubblewrap: the agent-worker's
# command sandbox (where the runtime refuses user namespaces it falls back to Landlock). All
# without recommends.
# hadolint ignore=DL3008
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl bubblewrap \
 && rm -rf /var/lib/apt/lists/*
# A fixed uid/gid, so Kubernetes' runAsUser and volume ownership can name it.
RUN groupadd --system --gid 10001 switchboard \
 && useradd --system --uid 10001 --gid switchboard --home-dir /var/lib/switchboard \
      --shell /usr/sbin/nologin switchboard \
 && install -d -o switchboard -g switchboard -m 0750 \
      /var/lib/switchboard /var/lib/switchboard/usage-buffer /var/lib/switchboard/workspaces \
      /var/lib/switchboard/state
COPY --from=build /out/switchboard /usr/local/bin/switchboard

# The gateway's usage buffer (kept while Redis is unreachable), the agents' workspaces and
# small state of one-shot commands (compose's "demo seeded" marker) live under
# /var/lib/switchboard, so a volume mounted there keeps them across restarts; a named volume
# starts with the ownership of the directory it is mounted on.
ENV GATEWAY_BUFFER_DIR=/var/lib/switchboard/usage-buffer \
    WORKSPACE_ROOT=/var/lib/switchboard/workspaces
WORKDIR /var/lib/switchboard
USER 10001:10001

# gateway, api, agent-worker, ledger, mock-llm (documentation only; publish what you serve).
EXPOSE 8080 8081 8082 8083 8090

# Liveness: GET /health does no I/O. Single-service containers set PORT (compose, ECS and
# Railway do); without it the check probes 8080: the gateway, also under `serve all`.
HEALTHCHECK --interval=15s --timeout=3s --start-period=10s --retries=3 \
  CMD ["/bin/sh", "-c", "curl -fsS -o /dev/null \"http://127.0.0.1:${PORT:-8080}/health\" || exit 1"]

# SIGTERM stops a service gracefully (in-flight requests finish, up to 30 s).
STOPSIGNAL SIGTERM
ENTRYPOINT ["switchboard"]
CMD ["serve", "all"]
