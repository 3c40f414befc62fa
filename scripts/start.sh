#!/usr/bin/env bash
# Set up, then open the quickstart notebook in JupyterLab (JP_HEADLESS=1: execute it headless instead).
set -euo pipefail
cd "$(dirname "$0")/.."
JP_SKIP_BROWSER=1 bash scripts/setup.sh
venv="$(cd "${JP_VENV:-.venv}" && pwd)"
export PATH="$venv/bin:$PATH"
if [[ "${JP_HEADLESS:-}" == 1 ]]; then
  exec "$venv/bin/jupyter" execute --inplace notebooks/01_quickstart.ipynb
fi
exec "$venv/bin/jupyter" lab notebooks/01_quickstart.ipynb "$@"
