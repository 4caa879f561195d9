# Shared by scripts/test and scripts/demo: make sure local Postgres and Redis are reachable on
# 127.0.0.1, starting them if they are installed but stopped, installing them (Debian/Ubuntu,
# apt-get) if they are missing. Sourced, not run.

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

as_root() {
  if [ "$(id -u)" = 0 ]; then "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo "$@"
  else die "need root to run: $* (run as root, or install sudo)"; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

wait_for_port() { # port name
  for _ in $(seq 1 60); do port_open "$1" && return 0; sleep 0.5; done
  die "$2 did not start listening on 127.0.0.1:$1 within 30 s"
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 || die "$* is missing and this is not a Debian-like system: install it with your package manager"
  say "installing $* with apt-get (once)"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

postgres_cluster_version() { ls /etc/postgresql 2>/dev/null | sort -V | tail -n 1; }

ensure_postgres() {
  if port_open 5432; then say "Postgres is reachable on 127.0.0.1:5432"; return 0; fi
  if [ -z "$(postgres_cluster_version)" ]; then
    apt_install postgresql postgresql-client
    # A fresh Debian cluster asks for passwords over TCP; the local tests and the demo use the
    # postgres role without one, as on a developer machine. Trust loopback only.
    local v hba; v=$(postgres_cluster_version); hba=/etc/postgresql/$v/main/pg_hba.conf
    as_root sed -i '1i host all all 127.0.0.1/32 trust\nhost all all ::1/128 trust' "$hba"
  fi
  say "starting Postgres $(postgres_cluster_version)"
  as_root pg_ctlcluster --skip-systemctl-redirect "$(postgres_cluster_version)" main start || true
  wait_for_port 5432 Postgres
  say "Postgres is up"
}

ensure_redis() {
  # The binary is needed even when a Redis is already listening: the bus tests start their
  # own to stop and restart it.
  command -v redis-server >/dev/null 2>&1 || apt_install redis-server
  if port_open 6379; then say "Redis is reachable on 127.0.0.1:6379"; return 0; fi
  say "starting Redis"
  local dir=${TMPDIR:-/tmp}/switchboard-redis
  mkdir -p "$dir"
  redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no --dir "$dir" --logfile "$dir/redis.log" >/dev/null
  wait_for_port 6379 Redis
  say "Redis is up"
}

ensure_pgbouncer() {
  # Only the binary: services/shared/db/tests/it/pgbouncer.rs starts its own PgBouncer on a free
  # port. Installing the package may start Debian's service on 6432 (where systemd or
  # invoke-rc.d run); stop it, nothing here uses it.
  [ -x /usr/sbin/pgbouncer ] && return 0
  apt_install pgbouncer
  if [ -x /etc/init.d/pgbouncer ]; then
    as_root /etc/init.d/pgbouncer stop >/dev/null 2>&1 || true
  fi
  say "PgBouncer $(/usr/sbin/pgbouncer --version | head -n 1) installed (the tests start their own)"
}

ensure_bubblewrap() {
  # The agent-worker runs the agents' bash tool under bubblewrap (services/agent-worker/src/
  # sandbox/); without it the worker falls back to Landlock + seccomp, and its tests of the
  # bubblewrap mode would have nothing to test.
  [ -x /usr/bin/bwrap ] && return 0
  apt_install bubblewrap
  say "bubblewrap $(/usr/bin/bwrap --version | awk '{print $2}') installed"
}

ensure_rust() {
  command -v cargo >/dev/null 2>&1 || die "cargo is missing: install Rust (https://rustup.rs), version $(sed -n 's/^rust-version = "\(.*\)"/\1/p' Cargo.toml) or newer"
}

ensure_node() {
  # The dashboard (web/) builds with Vite 8, which needs Node 20.19 or newer (or 22.12+). The
  # nodejs package of the machine's apt sources is used; an older one is refused by name.
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    if apt-cache show npm >/dev/null 2>&1; then apt_install nodejs npm; else apt_install nodejs; fi
  fi
  local v major minor
  v=$(node --version); major=${v#v}; major=${major%%.*}; minor=${v#v*.}; minor=${minor%%.*}
  if [ "$major" -lt 20 ] || { [ "$major" = 20 ] && [ "$minor" -lt 19 ]; } || { [ "$major" = 21 ]; } || { [ "$major" = 22 ] && [ "$minor" -lt 12 ]; }; then
    die "Node $v is too old for the dashboard's build (Vite 8 needs ^20.19 or >=22.12): install a newer nodejs (e.g. from NodeSource) and run again"
  fi
  say "Node $v, npm $(npm --version)"
}

build_web() {
  # web/dist, which the api embeds (services/api/src/web.rs). `npm ci` only when the lockfile
  # changed since the last install; the registry is the only network it needs.
  ensure_node
  if [ ! -f web/node_modules/.package-lock.json ] || [ web/package-lock.json -nt web/node_modules/.package-lock.json ]; then
    say "installing the dashboard's packages (npm ci)"
    (cd web && npm ci --no-audit --no-fund --loglevel=error)
  fi
  say "building the dashboard (web/dist)"
  (cd web && npm run --silent build)
}

ensure_chromium() {
  # The browser tests (tests/browser) drive Debian's Chromium through playwright-core, which
  # never downloads a browser of its own.
  [ -x /usr/bin/chromium ] && return 0
  apt_install chromium
  say "$(/usr/bin/chromium --version 2>/dev/null) installed"
}
