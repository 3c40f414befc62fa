#!/usr/bin/env bash
# Install what the tests need, then run the whole suite (unit, kernel, notebook and browser tests).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
python3 -m pytest -p no:cacheprovider "$@"
