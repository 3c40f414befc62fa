#!/usr/bin/env bash
# Install everything jupyter-perf needs to run and to be tested, on a fresh machine, into the
# project's own virtual environment (.venv, or $JP_VENV): never the machine's site-packages, so
# what runs here is what a user's fresh install gets (current IPython, ipykernel, JupyterLab).
# Idempotent: a second run installs nothing new. torch is pinned to the CPU build that lies on
# disk here; an unpinned torch would download a several-GB CUDA build.
set -euo pipefail
cd "$(dirname "$0")/.."

venv="${JP_VENV:-.venv}"
if [[ ! -x "$venv/bin/python" ]]; then
  echo "creating the virtual environment $venv"
  python3 -m venv "$venv"
fi
install() {
  # (this machine's pip configuration names local indexes that may be absent: drop those warnings)
  "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@" 2>&1 \
    | { grep -v "is ignored: it is neither a file nor a directory" || true; }
}
install "torch==2.13.0"
install -e ".[${JP_EXTRAS:-test}]"

# IPython 8 beside the environment's 9, for tests/test_tracebacks.py: a profiled cell's traceback must be the
# plain cell's on both. Only the tests put it on the path (first, in a subprocess of their own).
ipython8=.cache/ipython8
if [[ ! -d "$ipython8/IPython" ]]; then
  echo "installing IPython 8 into $ipython8 for the traceback tests"
  install --target "$ipython8" "ipython>=8.12,<9"
fi

if [[ "${JP_SKIP_BROWSER:-}" != 1 && ! -x /usr/bin/chromium ]]; then
  echo "installing Debian chromium for the browser tests"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq chromium >/dev/null
fi
