# Shared by scripts/backup and scripts/restore: the owner's connection and URL helpers.
# Sourced, not run.

say() { printf '==> %s\n' "$*" >&2; }
die() { printf 'error: %s\n' "$*" >&2; exit 1; }

# DATABASE_OWNER_URL from the environment, else from ./.env, else the .env.example default.
owner_url() {
  if [ -n "${DATABASE_OWNER_URL:-}" ]; then printf '%s' "$DATABASE_OWNER_URL"; return; fi
  if [ -f .env ]; then
    local line; line=$(grep -E '^DATABASE_OWNER_URL=' .env | tail -n 1 || true)
    if [ -n "$line" ]; then printf '%s' "${line#DATABASE_OWNER_URL=}"; return; fi
  fi
  printf '%s' 'postgres://postgres@127.0.0.1:5432/switchboard'
}

# The database named by a postgres:// URL (its path, without query parameters).
url_database() { local base=${1%%\?*}; printf '%s' "${base##*/}"; }

# The same URL (user, host, port, query parameters such as sslmode) for another database.
# Parameters with a hyphen (sqlx's own, such as statement-cache-capacity) are dropped: no
# libpq parameter has one, and pg_dump refuses what it does not know.
url_with_database() {
  local url=$1 db=$2 base query='' param
  base=${url%%\?*}
  if [ "$base" != "$url" ]; then
    local IFS='&'
    for param in ${url#*\?}; do
      case ${param%%=*} in *-*) ;; *) query="$query${query:+&}$param" ;; esac
    done
  fi
  printf '%s/%s%s' "${base%/*}" "$db" "${query:+?$query}"
}

# DATABASE_OWNER_URL as libpq takes it.
libpq_owner_url() { local url; url=$(owner_url); url_with_database "$url" "$(url_database "$url")"; }

need() { command -v "$1" >/dev/null 2>&1 || die "$1 is missing: install postgresql-client (apt-get install postgresql-client)"; }
