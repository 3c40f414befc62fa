"""Bounded storage for sampled columns, so a multi-hour cell stays within a few MB.

Two views of the same stream:

* the *history* keeps at most ``capacity`` rows for the whole run; when full,
  neighbouring rows are merged pairwise (mean of each column) and the stride
  doubles, so the run is always covered end to end at a coarser grain;
* the *tail* keeps the most recent rows exactly, numbered, so a live dashboard
  can ask "what arrived since row n" without copying the history.

Peaks are exact maxima over every row ever appended, never downsampled.
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Iterable

Row = dict[str, float | None]


class Timeline:
    def __init__(self, capacity: int = 2048, tail: int = 512):
        if capacity < 2 or capacity % 2:
            raise ValueError("capacity must be an even number ≥ 2")
        self.capacity = capacity
        self._lock = threading.Lock()
        self._rows: list[Row] = []
        # Rows waiting to be averaged into one at the current stride: per-column sums and counts.
        self._sums: dict[str, float] = {}
        self._counts: dict[str, int] = {}
        self._pending = 0
        self.stride = 1
        self.count = 0
        self._tail: deque[tuple[int, Row]] = deque(maxlen=tail)
        self.peaks: dict[str, float] = {}

    def append(self, row: Row) -> None:
        """Add one sample (must contain ``t``); called from the sampler thread."""
        with self._lock:
            self._tail.append((self.count, row))
            self.count += 1
            for key, value in row.items():
                if value is not None and (key not in self.peaks or value > self.peaks[key]):
                    self.peaks[key] = value
            self._accumulate(row)

    def _accumulate(self, row: Row) -> None:
        if self.stride == 1:
            self._store(row)
            return
        sums, counts = self._sums, self._counts
        for key, value in row.items():
            if key not in sums:
                sums[key], counts[key] = 0.0, 0
            if value is not None:
                sums[key] += value
                counts[key] += 1
        self._pending += 1
        if self._pending == self.stride:
            self._store(self._pending_row())
            self._sums, self._counts, self._pending = {}, {}, 0

    def _pending_row(self) -> Row:
        return {k: self._sums[k] / n if n else None for k, n in self._counts.items()}

    def _store(self, row: Row) -> None:
        self._rows.append(row)
        if len(self._rows) >= self.capacity:
            self._rows = [_merge(self._rows[i : i + 2]) for i in range(0, len(self._rows), 2)]
            self.stride *= 2

    def columns(self) -> dict[str, list[float | None]]:
        """The whole run as equal-length columns (missing values as None)."""
        with self._lock:
            rows = list(self._rows)
            if self._pending:
                rows.append(self._pending_row())
        return _columns(rows)

    def since(self, seen: int) -> tuple[dict[str, list[float | None]], int]:
        """Rows appended after the first ``seen`` ones (as far as the tail still holds), and the new count."""
        with self._lock:
            rows = [row for n, row in self._tail if n >= seen]
            count = self.count
        return _columns(rows), count

    def latest(self) -> Row | None:
        with self._lock:
            return self._tail[-1][1] if self._tail else None


def _merge(rows: list[Row]) -> Row:
    """Mean of each column over rows; None where no row has a value."""
    merged: Row = {}
    for key in dict.fromkeys(k for row in rows for k in row):
        values = [value for row in rows if (value := row.get(key)) is not None]
        merged[key] = sum(values) / len(values) if values else None
    return merged


def _columns(rows: Iterable[Row]) -> dict[str, list[float | None]]:
    rows = list(rows)
    keys: list[str] = []
    for row in rows:
        keys.extend(k for k in row if k not in keys)
    return {key: [row.get(key) for row in rows] for key in keys}


class Series:
    """Fixed columns appended on the hot path (one row per step), halved when full.

    An order of magnitude cheaper per row than :class:`Timeline` (one tuple
    appended, no lock: a list append is atomic under the GIL), which matters at
    thousands of steps per second. Halving averages neighbouring rows, and
    rows arriving after it are averaged in groups of the same size, so the
    whole run stays covered evenly at a coarser grain.

    :meth:`append_block` adds many rows known only by their mean (steps that
    were counted, not timed one by one) at a cost in the rows stored, not in
    the rows added: a run of rows inside a group is kept as its mean and its
    weight, so the group's mean is the same as if each row had been appended.
    """

    def __init__(self, names: tuple[str, ...], capacity: int = 4096):
        if capacity < 2 or capacity % 2:
            raise ValueError("capacity must be an even number ≥ 2")
        self.names = names
        self.capacity = capacity
        self._rows: list[tuple] = []
        # The group being filled once strided: rows appended one by one, a block's run as (mean, weight),
        # and how many rows the group still needs.
        self._pending: list[tuple] = []
        self._run: tuple | None = None
        self._run_n = 0
        self._need = 1
        self.stride = 1
        self.count = 0

    def append(self, row: tuple) -> None:
        self.count += 1
        if self.stride > 1:
            self._pending.append(row)
            self._need -= 1
            if self._need:
                return
            row = self._group_mean()
        self._rows.append(row)
        if len(self._rows) >= self.capacity:
            self._halve()

    def append_block(self, row: tuple, n: int) -> None:
        """The same as ``n`` calls to :meth:`append` with ``row``, at a cost in the rows stored, not in ``n``."""
        done = 0
        while done < n:
            stride = self.stride
            if stride > 1 and (self._run is not None or self._pending or n - done < stride):
                # A group partly filled, or to be: these rows join it as their mean and weight.
                k = min(n - done, self._need)
                mean = row if self._run is None else _weighted_mean(self._run, self._run_n, row, k)
                self._run, self._run_n = mean, self._run_n + k
                self.count += k
                self._need -= k
                done += k
                if self._need:
                    continue
                self._rows.append(self._group_mean())
            else:  # whole groups (single rows before the first halving), up to the next halving
                k = min((n - done) // stride, self.capacity - len(self._rows))
                self._rows.extend([row] * k)
                self.count += k * stride
                done += k * stride
            if len(self._rows) >= self.capacity:
                self._halve()

    def _group_mean(self) -> tuple:
        """The filled group's mean, and an empty group to fill."""
        pending, run, run_n = self._pending, self._run, self._run_n
        self._pending, self._run, self._run_n, self._need = [], None, 0, self.stride
        if run is None:
            return _mean_row(pending)
        return _weighted_mean(run, run_n, _mean_row(pending), len(pending)) if pending else run

    def _halve(self) -> None:
        """Neighbouring rows merged pairwise, a column at a time (the rows are full: their number is even)."""
        columns = [
            [(a + b) / 2 for a, b in zip(col[0::2], col[1::2])]
            if None not in col
            else [None if a is None or b is None else (a + b) / 2 for a, b in zip(col[0::2], col[1::2])]
            for col in zip(*self._rows)
        ]
        self._rows = list(zip(*columns))
        self.stride *= 2
        self._need = self.stride

    def latest(self) -> dict[str, float | None] | None:
        rows = self._rows
        return dict(zip(self.names, rows[-1])) if rows else None

    def columns(self) -> dict[str, list[float | None]]:
        rows = list(self._rows)
        return {name: list(col) for name, col in zip(self.names, zip(*rows))} if rows else {}


def _mean_row(rows: list[tuple]) -> tuple:
    """Column means of a group of rows; None where any value is unknown (unknown must not pass for a number)."""
    n = len(rows)
    return tuple([None if None in col else sum(col) / n for col in zip(*rows)])


def _weighted_mean(a: tuple, wa: int, b: tuple, wb: int) -> tuple:
    """Column means of ``wa`` rows averaging ``a`` and ``wb`` averaging ``b``; None where either is unknown."""
    return tuple(None if x is None or y is None else (x * wa + y * wb) / (wa + wb) for x, y in zip(a, b))
