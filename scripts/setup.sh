#!/usr/bin/env bash
# Install everything jupyter-perf needs to run and to be tested, on a fresh machine.
# Idempotent: a second run installs nothing new. torch is pinned to the CPU build
# that lies on disk here; an unpinned torch would download a several-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

python3 -m pip install --quiet --disable-pip-version-check "torch==2.13.0"
python3 -m pip install --quiet --disable-pip-version-check -e ".[test]"

if [[ "${JP_SKIP_BROWSER:-}" != 1 && ! -x /usr/bin/chromium ]]; then
  echo "installing Debian chromium for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
