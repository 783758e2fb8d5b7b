#!/usr/bin/env bash
# Stop the local PostgreSQL cluster that .ci/start-postgres.sh started (scripts/test.sh calls this on exit
# only when the cluster was not running before it started it, so a developer's own server keeps running).
set -euo pipefail

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi
}

command -v pg_lsclusters >/dev/null 2>&1 || exit 0
read -r VERSION CLUSTER _PORT STATUS _ < <(pg_lsclusters --no-header | head -n 1) || exit 0
if [ "${STATUS:-}" = "online" ]; then
  echo "stop-postgres: stopping cluster ${VERSION}/${CLUSTER}" >&2
  as_root pg_ctlcluster "$VERSION" "$CLUSTER" stop >&2
fi
