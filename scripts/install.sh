#!/usr/bin/env bash
# Installs everything the project needs on a fresh Debian machine: system packages, then a venv in .venv.
# Idempotent: a second call only checks.
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
[ -d /usr/share/wordnet ] || need_apt+=(wordnet-base)
command -v pg_ctlcluster >/dev/null || need_apt+=(postgresql)
command -v chromium >/dev/null || need_apt+=(chromium)
command -v docker-compose >/dev/null || need_apt+=(docker-compose)
if [ ${#need_apt[@]} -gt 0 ]; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${need_apt[@]}"
fi

PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
[ -x .venv/bin/python ] || "$PY" -m venv .venv
.venv/bin/python -m pip install -q --upgrade pip
# torch first, pinned: the CPU build on this machine's disk (a looser pin downloads several GB)
.venv/bin/python -m pip install -q torch==2.13.0
.venv/bin/python -m pip install -q -e '.[dev]'
