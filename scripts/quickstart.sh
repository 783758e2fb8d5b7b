#!/usr/bin/env bash
# The main job end to end on embedded defaults: install the Python environment (no system packages: the
# quickstart's data is synthetic), run the quickstart experiment, write a report.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
.venv/bin/indexer run examples/quickstart.yaml --out out/quickstart
echo "xdg-open out/quickstart/report.html (or read out/quickstart/report.md)"
