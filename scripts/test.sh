#!/usr/bin/env bash
# Install, lint, validate the compose file, start a real PostgreSQL, run the whole test suite
# (store and API tests run on SQLite and on PostgreSQL).
set -euo pipefail
cd "$(dirname "$0")/.."
INDEXER_EXTRAS=dev,systems,ray bash scripts/install.sh  # every backend and executor is tested, so all are installed
# what the tests need from the system: WordNet's files (tests/indexer/datasets/test_text.py, the text-search
# API test), Chromium (the page and docs tests), docker-compose (the compose check below) and, unless a
# database is given, PostgreSQL (.ci/start-postgres.sh)
needs=(wordnet chromium docker-compose)
[ -n "${INDEXER_TEST_DATABASE_URL:-}" ] || needs+=(postgresql)
bash scripts/install-system.sh "${needs[@]}"
.venv/bin/ruff check indexer app tests bench
.venv/bin/mypy indexer app
docker-compose -f docker-compose.yml config -q
docker-compose -f docker-compose.yml --profile ray config -q
if [ -z "${INDEXER_TEST_DATABASE_URL:-}" ]; then
  # a cluster this script starts is stopped when it exits; one that was running already is left running
  if ! { command -v pg_lsclusters >/dev/null && pg_lsclusters --no-header | grep -qw online; }; then
    trap 'bash .ci/stop-postgres.sh || true' EXIT
  fi
  INDEXER_TEST_DATABASE_URL=$(bash .ci/start-postgres.sh | tail -n 1)
  export INDEXER_TEST_DATABASE_URL
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1
.venv/bin/python -m pytest -q -p no:cacheprovider "$@"
