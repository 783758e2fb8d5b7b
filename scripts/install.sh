#!/usr/bin/env bash
# The Python environment every path needs: .venv with torch's CPU build and the project (editable, with the
# dev tools). No system packages: the paths that need some install them (scripts/install-system.sh).
# Idempotent: when .venv already holds this pyproject.toml's install, a second call only checks (~1 s).
# Says what it is doing: one `install:` line per step, then pip's own lines (what it collects and downloads,
# with a progress bar when the output is a terminal), so a first install is never minutes of silence.
set -euo pipefail
cd "$(dirname "$0")/.."

TORCH=2.13.0+cpu  # pyproject.toml pins torch==2.13.0, which this local version satisfies
TORCH_CPU_INDEX=${TORCH_CPU_INDEX:-https://download.pytorch.org/whl/cpu}
STAMP=.venv/.indexer-install  # the hash of the pyproject.toml and extras last installed
# the project's extras: dev tools by default; the tests add `systems` (every deployed system's package)
EXTRAS=${INDEXER_EXTRAS:-dev}

step() { echo "install: $*"; }
PY=${PYTHON:-python3.11}
command -v "$PY" >/dev/null || PY=python3
if [ ! -x .venv/bin/python ]; then
  step "creating .venv with $("$PY" --version 2>&1) ..."
  "$PY" -m venv .venv
  step "upgrading pip in .venv ..."
  .venv/bin/python -m pip install -q --upgrade pip
fi
# no -q: pip names each package it collects and downloads; its bar draws only on a terminal, so a CI log
# gets one line per download, not a redraw per chunk
pip() { .venv/bin/python -m pip "$@"; }
pip_install() { pip install --progress-bar on "$@"; }

# torch alone, the CPU build named explicitly (the default registry wheel drags in several GB of CUDA
# libraries): a wheel on disk if pip's find-links has one, asking no index; else PyTorch's CPU index,
# with a short timeout so that a machine that cannot reach it fails in seconds. --no-deps: torch's own
# dependencies come from the usual index with the project's, below.
torch_version() { .venv/bin/python -c "import importlib.metadata as m; print(m.version('torch'))" 2>/dev/null; }
if [ "$(torch_version)" != "$TORCH" ]; then
  step "installing torch $TORCH (CPU build) ..."
  pip_install --no-deps --no-index "torch==$TORCH" 2>/dev/null || {
    echo "install: no torch $TORCH wheel on disk; trying $TORCH_CPU_INDEX" >&2
    pip_install --no-deps --timeout 20 --retries 1 --index-url "$TORCH_CPU_INDEX" "torch==$TORCH"
  }
fi

want="$(sha256sum pyproject.toml | cut -d' ' -f1) $EXTRAS"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$want" ] || ! pip check >/dev/null 2>&1; then
  step "installing the project and its dependencies (extras: $EXTRAS) ..."
  pip_install -e ".[$EXTRAS]"
  step "checking the installed dependencies ..."
  pip check
  echo "$want" > "$STAMP"
else
  step ".venv is up to date (extras: $EXTRAS)"
fi
# the project's resolver keeps the CPU build (it satisfies the pin): check rather than trust
[ "$(torch_version)" = "$TORCH" ] || { echo "install: torch is $(torch_version), not $TORCH" >&2; exit 1; }
