# What tests/bench/gateway/run and ./instructions share: the gateway's environment, the run's
# own Redis, and the demo tenant set up so that no call is refused. Sourced after
# scripts/lib/services.sh, with `work` (a temporary directory) and `pids` (killed at exit) set.

BENCH_DB=switchboard_bench_gw
BENCH_PREFIX=bench-gw:

# The environment of every service the benchmark starts, but Redis's URL.
bench_env() { # mock-llm port
  export DATABASE_OWNER_URL=postgres://postgres@127.0.0.1:5432/$BENCH_DB
  export DATABASE_URL=postgres://switchboard_app@127.0.0.1:5432/$BENCH_DB
  export DATABASE_SYSTEM_URL=postgres://switchboard_system@127.0.0.1:5432/$BENCH_DB
  export REDIS_KEY_PREFIX=$BENCH_PREFIX
  export JWT_SECRET=bench-gateway-jwt-secret-not-for-production
  export ENCRYPTION_MASTER_KEY=bench-gateway-master-key-not-for-production
  export MOCK_LLM_URL=http://127.0.0.1:$1/v1
  # The benchmark's provider, mock-llm, listens on this machine: an operator's setting.
  export PROVIDER_ALLOW_PRIVATE=true
  export GATEWAY_BUFFER_DIR=$work/usage-buffer
  export HOST=127.0.0.1
  export LOG_FORMAT=json
  unset PORT
}

# Starts the run's own Redis (pinned when a cpu is given) and points REDIS_URL at it.
bench_own_redis() { # port [cpu]
  local pin=()
  [ -n "${2:-}" ] && pin=(taskset -c "$2")
  say "starting the run's own Redis on port $1${2:+ (cpu $2)}"
  "${pin[@]}" redis-server --bind 127.0.0.1 --port "$1" --save "" --appendonly no \
    --dir "$work" --logfile "$work/redis.log" &
  pids+=("$!")
  wait_for_port "$1" "the run's Redis"
  export REDIS_URL=redis://127.0.0.1:$1
}

# Migrates and seeds the demo tenant, then raises its budget out of reach and takes any rate
# limit off its key: no call is refused, but every call still runs the whole policy path.
# Sets KEY to the demo key.
bench_prepare() { # switchboard binary
  say "preparing the database $BENCH_DB and the demo tenant"
  "$1" migrate >"$work/migrate.log" 2>&1 || { cat "$work/migrate.log" >&2; die "migrate failed"; }
  "$1" seed --demo --json >"$work/seed.json" 2>"$work/seed.log" || { cat "$work/seed.log" >&2; die "seed failed"; }
  KEY=$(sed -n 's/.*"api_key": *"\([^"]*\)".*/\1/p' "$work/seed.json")
  [ -n "$KEY" ] || die "no api_key in the seed output: $(cat "$work/seed.json")"
  psql -q -v ON_ERROR_STOP=1 "$DATABASE_OWNER_URL" >/dev/null <<'SQL'
UPDATE budgets SET limit_micros = 1000000000000000;
UPDATE api_keys SET rpm_limit = NULL, tpm_limit = NULL;
SQL
}
