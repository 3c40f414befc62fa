#!/usr/bin/env bash
# Install what the tests need into the project's virtual environment, then run the whole suite
# (unit, kernel, notebook and browser tests) with that environment's Python and Jupyter.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
venv="$(cd "${JP_VENV:-.venv}" && pwd)"
export PATH="$venv/bin:$PATH"
bash scripts/check_frontend.sh
# The Python house rules (pyproject.toml's [tool.ruff] and [tool.mypy]), before the slower tests.
ruff check --quiet jupyter_perf tests benchmarks
mypy
python -m pytest -p no:cacheprovider "$@"
