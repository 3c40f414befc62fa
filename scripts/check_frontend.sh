#!/usr/bin/env bash
# The TypeScript's checks, in labextension/: eslint, prettier, and the unit tests of its pure
# modules (npm test also bundles the live dashboard's module and loads it). Installs the node
# packages from the lock file first, only when they are missing or older than it, so a second run
# installs nothing. Quiet: one line when all pass, a failing step's output otherwise.
set -euo pipefail
cd "$(dirname "$0")/../labextension"

if [[ ! -f node_modules/.package-lock.json || package-lock.json -nt node_modules/.package-lock.json ]]; then
  npm ci --no-audit --no-fund --loglevel=error >/dev/null
fi
for step in lint:check prettier:check test; do
  if ! out="$(npm run --silent "$step" 2>&1)"; then
    printf '%s\n' "$out"
    echo "scripts/check_frontend.sh: npm run $step failed" >&2
    exit 1
  fi
done
echo "frontend: eslint, prettier and npm test passed"
