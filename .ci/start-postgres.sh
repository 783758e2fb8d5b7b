#!/usr/bin/env bash
# Start a local PostgreSQL for the tests and print its SQLAlchemy URL on stdout (everything else on stderr).
#
#   export INDEXER_TEST_DATABASE_URL="$(.ci/start-postgres.sh)"
#
# Uses the distribution's cluster tools (Debian/Ubuntu postgresql-common: pg_lsclusters, pg_ctlcluster);
# installs the `postgresql` package with apt only when they are missing. Idempotent: a running cluster,
# an existing role or database is left as it is. Override with PGTEST_USER, PGTEST_PASSWORD, PGTEST_DB.
set -euo pipefail

DB_USER="${PGTEST_USER:-indexer}"
DB_PASSWORD="${PGTEST_PASSWORD:-indexer}"
DB_NAME="${PGTEST_DB:-indexer_test}"

log() { echo "start-postgres: $*" >&2; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

as_postgres() {
  if [ "$(id -u)" -eq 0 ]; then
    runuser -u postgres -- "$@"
  else
    sudo -u postgres "$@"
  fi
}

if ! command -v pg_lsclusters >/dev/null 2>&1; then
  log "PostgreSQL not found; installing it with apt"
  as_root apt-get update -qq >&2
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >&2
fi

# The first cluster the tools know about (Debian creates <version>/main on install).
read -r VERSION CLUSTER PORT STATUS _ < <(pg_lsclusters --no-header | head -n 1) || true
if [ -z "${VERSION:-}" ]; then
  VERSION="$(ls /usr/lib/postgresql | sort -V | tail -n 1)"
  log "no cluster found; creating ${VERSION}/main"
  as_root pg_createcluster "$VERSION" main >&2
  read -r VERSION CLUSTER PORT STATUS _ < <(pg_lsclusters --no-header | head -n 1)
fi

if [ "$STATUS" != "online" ]; then
  log "starting cluster ${VERSION}/${CLUSTER} on port ${PORT}"
  as_root pg_ctlcluster "$VERSION" "$CLUSTER" start >&2
fi

for _ in $(seq 1 60); do
  if pg_isready -q -h 127.0.0.1 -p "$PORT"; then break; fi
  sleep 0.5
done
pg_isready -h 127.0.0.1 -p "$PORT" >&2

psql_admin() { as_postgres psql -X -q -v ON_ERROR_STOP=1 -p "$PORT" -d postgres "$@"; }

if [ "$(psql_admin -tAc "SELECT 1 FROM pg_roles WHERE rolname = '${DB_USER}'")" != "1" ]; then
  log "creating role ${DB_USER}"
  psql_admin -c "CREATE ROLE \"${DB_USER}\" LOGIN PASSWORD '${DB_PASSWORD}'" >&2
fi
if [ "$(psql_admin -tAc "SELECT 1 FROM pg_database WHERE datname = '${DB_NAME}'")" != "1" ]; then
  log "creating database ${DB_NAME}"
  psql_admin -c "CREATE DATABASE \"${DB_NAME}\" OWNER \"${DB_USER}\"" >&2
fi

URL="postgresql+psycopg://${DB_USER}:${DB_PASSWORD}@127.0.0.1:${PORT}/${DB_NAME}"
# Check that the role can log in over TCP with its password, as the tests will.
PGPASSWORD="$DB_PASSWORD" psql -X -q -h 127.0.0.1 -p "$PORT" -U "$DB_USER" -d "$DB_NAME" -c "SELECT 1" >/dev/null
echo "$URL"
