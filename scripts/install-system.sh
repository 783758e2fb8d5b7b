#!/usr/bin/env bash
# Install the Debian packages a path needs, by what they are for; the Python environment is install.sh's.
#
#   bash scripts/install-system.sh wordnet          # the `text` dataset's wordnet corpus (wordnet-base)
#   bash scripts/install-system.sh postgresql       # the store on PostgreSQL (tests: .ci/start-postgres.sh)
#   bash scripts/install-system.sh chromium         # the browser tests (tests/app/test_pages.py, test_docs.py)
#   bash scripts/install-system.sh docker-compose   # validating docker-compose.yml (scripts/test.sh)
#
# Idempotent: what is already there is not touched, and apt runs only when something is missing.
set -euo pipefail

usage() { echo "usage: $0 {wordnet|postgresql|chromium|docker-compose}..." >&2; exit 2; }
[ $# -gt 0 ] || usage

# what each need installs, and the file or command that shows it is already there
missing=()
for need in "$@"; do
  case "$need" in
    wordnet) [ -f "${WNSEARCHDIR:-/usr/share/wordnet}/data.noun" ] || missing+=(wordnet-base) ;;
    postgresql) command -v pg_lsclusters >/dev/null || missing+=(postgresql) ;;
    # fonts-liberation: the one recommend of chromium's that a headless page needs (text to render)
    chromium) command -v chromium >/dev/null || command -v chromium-browser >/dev/null ||
      missing+=(chromium fonts-liberation) ;;
    docker-compose) command -v docker-compose >/dev/null || missing+=(docker-compose) ;;
    *) echo "install-system: unknown need '$need'" >&2; usage ;;
  esac
done
[ ${#missing[@]} -gt 0 ] || exit 0

SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
echo "install-system: apt-get install ${missing[*]}" >&2
$SUDO apt-get update -q
# no recommends: they add a Docker engine (docker-compose's), a desktop's printing and notification
# services (chromium's) and the wordnet CLI, none of which a path here uses
$SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends "${missing[@]}"
