"""``%%perfprofile`` and ``%perfprofile``: parse the options, run the code under a Session, show the Report.

Options go through IPython's ``magic_arguments`` so ``%%perfprofile?`` is the
help and an unknown option is a UsageError before anything runs. The code
runs in the user namespace as IPython would run it (magics inside are
expanded, a trailing expression is displayed), and when it raises, the report
is still shown, the user's own traceback follows, and the cell counts as
failed, so "Run All" stops there as it would without the magic.
"""

from __future__ import annotations

import re
import sys
from typing import TYPE_CHECKING

from IPython.core.error import UsageError
from IPython.core.magic import Magics, line_cell_magic, magics_class
from IPython.core.magic_arguments import argument, magic_arguments, parse_argstring
from IPython.display import display

if TYPE_CHECKING:
    from IPython.core.interactiveshell import InteractiveShell

#: Options that take a value, for splitting ``%perfprofile [options] statement``.
_VALUED = {"-o", "--output", "--interval", "--export", "--compare", "--apply", "--load"}


@magics_class
class PerfMagics(Magics):
    shell: InteractiveShell  # load_ipython_extension registers it with the shell
    @magic_arguments()
    @argument("-o", "--output", metavar="NAME", help="store the Report in the namespace as NAME")
    @argument("--interval", type=float, default=0.1, metavar="S", help="sampling period in seconds (default 0.1)")
    @argument("--no-live", action="store_true", help="show only the summary when the run ends, no live dashboard")
    @argument("--deep", action="store_true", help="also run torch.profiler, keep its trace, list the top operators")
    @argument("--export", metavar="PATH", help="write the report to PATH (.json or .html)")
    @argument("--compare", metavar="NAME", help="show a before/after against the Report stored as NAME")
    @argument("--apply", metavar="ID[,ID]", help="apply these optimizations to the live objects and the code "
              "(docs/optimizations.md), then run the rewritten code")
    @argument("--load", metavar="DIR", help="run nothing: show the rank Reports a distributed run wrote to DIR "
              "(torchrun ... -m jupyter_perf.run), merged and diagnosed (docs/distributed.md)")
    @line_cell_magic
    def perfprofile(self, line: str, cell: str | None = None):
        """Profile a cell (``%%perfprofile``) or a statement (``%perfprofile stmt``) while it runs.

        Shows where each step's time went (data wait, host-to-device copies,
        forward, backward, optimizer), peak host and GPU memory, the bottleneck
        with its evidence, and ranked recommendations.
        """
        options, statement = _split_line(line) if cell is None else (line, "")
        args = parse_argstring(self.perfprofile, options)
        if args.export:
            from .export import check_export_path

            try:
                check_export_path(args.export)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        if args.load:
            return self._load(args, (cell if cell is not None else statement).strip())
        source = cell if cell is not None else statement
        if not source.strip():
            raise UsageError("nothing to profile: %perfprofile needs a statement, %%perfprofile a cell body")
        before = self._before(args.compare)
        if not args.interval >= 0.01:
            raise UsageError(f"--interval must be at least 0.01 s, got {args.interval}")
        if args.apply:
            source = self._apply(args.apply, source, before)
        return self._run(source, args, before)

    def _apply(self, ids: str, source: str, report) -> str:
        """Apply ``--apply`` optimizations, say what each did (or why not), return the code to run.

        The diffs are not repeated here: the cell edit shows them (frontend.py).
        """
        from .optimizations import apply_to_cell, parse_ids

        try:
            opt_ids = parse_ids(ids)
        except ValueError as exc:
            raise UsageError(f"--apply: {exc}") from None
        source, outcomes = apply_to_cell(opt_ids, self.shell.user_ns, source, report)
        for outcome in outcomes:
            if isinstance(outcome, str):
                print(outcome, file=sys.stderr)
            else:
                print(outcome.summary(diff=False))
        return source

    def _load(self, args, code: str):
        """``--load DIR``: the merged rank Reports, shown (and stored, exported) as a run's would be."""
        if code:
            raise UsageError("--load runs nothing: give it no code")
        from .distributed import load

        try:
            report = load(args.load)
        except (OSError, ValueError) as exc:
            raise UsageError(f"--load {args.load}: {exc}") from None
        if args.output:
            self.shell.user_ns[args.output] = report
        if args.export:
            from .export import export_report

            export_report(report, args.export)
        summary = self._summary(report)
        display(summary)
        self._panel(summary, "")
        return None

    def _before(self, name: str | None):
        if name is None:
            return None
        from .report import Report

        value = self.shell.user_ns.get(name)
        if not isinstance(value, Report):
            found = "nothing" if value is None else f"a {type(value).__name__}"
            raise UsageError(f"--compare {name}: {name!r} holds {found}, not a Report (store one with -o {name})")
        return value

    def _run(self, source: str, args, before):
        from .execution import compile_source, run_compiled
        from .runs import finish
        from .runs import session as new_session

        transformed = self.shell.transform_cell(source)
        # Cached under the running cell's number, so its frames read "Cell In[N]" as the plain cell's would.
        filename = self.shell.compile.cache(transformed, self._cell_number(), raw_code=source)
        try:
            body, last = compile_source(transformed, filename)
        except SyntaxError as exc:
            self.shell.showsyntaxerror(filename)
            self._mark_failed(exc)
            return None
        from .ui.dashboard import open_dashboard

        namespace = self.shell.user_ns
        session = new_session(namespace, source, interval=args.interval, deep=args.deep)
        dashboard = open_dashboard(session, live=not args.no_live)
        session.start()
        value = error = None
        try:
            value = run_compiled(body, last, namespace)
        except BaseException as exc:  # noqa: BLE001 - the report is built either way; the error is shown after it
            error = exc
        report = finish(session, error)
        if args.output:
            namespace[args.output] = report
        if args.export:
            from .export import export_report

            export_report(report, args.export)
        summary = self._summary(report)
        if dashboard is not None:
            dashboard.finish(summary)
        else:
            display(summary)
        if before is not None:
            from .report import Comparison

            display(Comparison(before, report))
        self._panel(summary, source)
        if error is not None:
            self._fail(error)
            return None
        return value

    def _summary(self, report):
        """The Report's summary; where widgets show and there are fixes, the optimization panel follows it and
        its cards are the list of fixes."""
        from .ui.frontend_detect import widgets_unavailable
        from .ui.summary import Summary

        return Summary(report, panel=bool(report.recommendations) and widgets_unavailable(self.shell) is None)

    def _panel(self, summary, source: str) -> None:
        """The optimization panel under the summary, where it was promised; if it fails, the plain list of fixes."""
        if not summary.panel:
            return
        try:
            from .ui.panel import show_panel

            show_panel(summary.report, self.shell.user_ns, source)
        except Exception as exc:  # noqa: BLE001 - the run and its summary stand without the panel
            from .state import current
            from .ui.summary import fixes_mimebundle

            current().say_once("panel-failed", f"the optimization panel failed to open ({type(exc).__name__}: "
                               f"{exc}); the fixes are listed instead")
            display(fixes_mimebundle(summary.report), raw=True)

    def _fail(self, error: BaseException) -> None:
        """Show the traceback the cell would show unprofiled, and mark the cell failed."""
        if isinstance(error, KeyboardInterrupt):
            print("KeyboardInterrupt: profiling stopped; the partial report is above.", file=sys.stderr)
        else:
            from .tracebacks import strip_profiler_frames

            strip_profiler_frames(error)
            self.shell.showtraceback((type(error), error, error.__traceback__), tb_offset=0)
        self._mark_failed(error)

    def _running_cell(self):
        """The ExecutionResult of the cell running this magic; None when no cell runs it (a direct call)."""
        return getattr(self.shell.displayhook, "exec_result", None)

    def _cell_number(self) -> int:
        """The running cell's prompt number (``run_cell`` has already counted it by the time a magic runs)."""
        result = self._running_cell()
        number = getattr(result, "execution_count", None)
        return number if number is not None else self.shell.execution_count

    def _mark_failed(self, error: BaseException) -> None:
        """Make the cell count as failed, as the plain cell would: "Run All" stops here."""
        result = self._running_cell()
        if result is not None:
            result.error_in_exec = error


def _split_line(line: str) -> tuple[str, str]:
    """Split ``%perfprofile [options] statement`` into the options and the statement, verbatim."""
    expect_value = False
    for match in re.finditer(r"\S+", line):
        token = match.group()
        if expect_value:
            expect_value = False
        elif token.startswith("-") and not token.lstrip("-")[:1].isdigit():
            expect_value = token in _VALUED
        else:
            return line[: match.start()], line[match.start() :]
    return line, ""
