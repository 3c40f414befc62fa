"""``python -m jupyter_perf.run [--out DIR] [--interval S] script.py [args ...]``: run a script as one profiled rank.

Meant to be started by ``torchrun`` (``torchrun --nproc-per-node 8 -m jupyter_perf.run train.py ...``), once
per rank, on every machine: the script runs as ``python script.py args`` would (``__name__ == "__main__"``,
``sys.argv``, its directory first on ``sys.path``) as one profiled rank, as ``jupyter_perf.rank_profile`` makes
one, and each rank writes ``DIR/rank-<rank>.json`` (default ``perfprofile-ranks``, or ``$JUPYTER_PERF_OUT``)
when it ends, whether the script returned, raised or was stopped. ``%perfprofile --load DIR`` then shows them
merged.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m jupyter_perf.run", description=__doc__.splitlines()[0])
    parser.add_argument("--out", default=os.environ.get("JUPYTER_PERF_OUT", "perfprofile-ranks"),
                        help="directory for the rank Reports (default: perfprofile-ranks, or $JUPYTER_PERF_OUT)")
    parser.add_argument("--interval", type=float, default=0.1, help="sampling period in seconds (default 0.1)")
    parser.add_argument("script", help="the training script")
    parser.add_argument("args", nargs=argparse.REMAINDER, help="its arguments")
    options = parser.parse_args(argv)
    path = Path(options.script)
    try:
        source = path.read_text(encoding="utf-8")
    except OSError as exc:
        parser.error(f"cannot read {path}: {exc.strerror}")
    code = compile(source, str(path), "exec")
    sys.argv = [str(path), *options.args]
    sys.path.insert(0, str(path.resolve().parent))
    namespace = {"__name__": "__main__", "__file__": str(path), "__builtins__": __builtins__}
    from .distributed.rank import run_as_rank, script_spec

    run_as_rank(lambda: exec(code, namespace),  # noqa: S102 - the user's script, as `python script.py` runs it
                script_spec(options.out, options.interval), namespace, source)


if __name__ == "__main__":
    main()
