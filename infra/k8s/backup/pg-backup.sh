#!/bin/sh
# One scheduled backup of the Switchboard database, then retention. Run by the compose `backup`
# profile (in a loop, docker-compose.yml) and by the Kubernetes CronJob (infra/k8s/backup.yaml),
# both in the postgres image; tested by scripts/check-backup-schedule. POSIX sh: the image's
# /bin/sh is dash.
#
#   BACKUP_DATABASE_URL  libpq URL of the database, as a role that reads every row: a superuser
#                        or a role with BYPASSRLS (the tables force row-level security, which
#                        binds their owner too, and pg_dump then refuses)
#   BACKUP_DIR           where the dumps go (default /backups)
#   BACKUP_KEEP          how many of the newest dumps to keep (default 14)
#
# The dump is pg_dump's custom format, named like scripts/backup's
# (switchboard-<database>-<UTC time>.dump), so scripts/restore restores it. It is written under
# a .partial name, checked with pg_restore --list and renamed: a file with the final name is
# always a whole dump. Only then are older dumps deleted, so a failed run deletes nothing.
set -eu

dir=${BACKUP_DIR:-/backups}
keep=${BACKUP_KEEP:-14}
url=${BACKUP_DATABASE_URL:?set BACKUP_DATABASE_URL to the database to back up}
case $keep in '' | *[!0-9]* | 0) echo "error: BACKUP_KEEP must be a whole number above 0, not '$keep'" >&2; exit 2 ;; esac

log() { printf '%s pg-backup: %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >&2; }

# The database's name: the URL's path, without its query.
db=${url%%\?*}
db=${db##*/}
mkdir -p "$dir"
# Left by a run that died mid-dump; one run at a time (the loop, or concurrencyPolicy: Forbid).
rm -f "$dir"/switchboard-*.dump.partial

file="$dir/switchboard-$db-$(date -u +%Y%m%dT%H%M%SZ).dump"
log "dumping $db to $file"
umask 077
if ! pg_dump --format=custom --compress=6 --dbname="$url" --file="$file.partial"; then
  rm -f "$file.partial"
  log "error: pg_dump failed; no dump deleted"
  exit 1
fi
entries=$(pg_restore --list "$file.partial" | grep -cv '^;' || true)
if [ "$entries" -eq 0 ]; then
  log "error: the dump has no entries; kept as $file.partial"
  exit 1
fi
mv "$file.partial" "$file"
log "done: $(du -h "$file" | cut -f1), $entries entries"

# Retention: the names sort by time (UTC, fixed width), newest last.
count=$(ls "$dir" | grep -c "^switchboard-$db-.*\.dump\$" || true)
if [ "$count" -gt "$keep" ]; then
  ls "$dir" | grep "^switchboard-$db-.*\.dump\$" | sort | head -n "$((count - keep))" | while read -r old; do
    log "deleting $old (keeping the newest $keep)"
    rm -f "$dir/$old"
  done
fi
