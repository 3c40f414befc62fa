"""How a number reads wherever a person sees one: sizes, durations, rates, shares, ratios.

One module, so the same memory is never "6.3 MB" in a finding and "6.00 MiB" in a table. Sizes are
binary (KiB, MiB, GiB: what ``free``, ``nvidia-smi`` and torch's allocator report), with three
significant digits below 100 of a unit and whole numbers above. The live view's TypeScript twin
(``labextension/src/units.ts``) follows the same rules.
"""

from __future__ import annotations

import math

#: What a value the run did not observe reads as: never 0.
MISSING = "—"

_SIZE_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB")
_RATE_PREFIXES = ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))

KiB = 1024
MiB = 1024**2
GiB = 1024**3


def significant(value: float) -> str:
    """Three significant digits below 100, a whole number from 100 on (``0.0123``, ``4.56``, ``78.9``, ``1234``)."""
    if value == 0 or not math.isfinite(value):
        return f"{value:g}" if not math.isfinite(value) else "0"
    magnitude = abs(value)
    if magnitude >= 100:
        return f"{value:,.0f}"
    decimals = max(0, 2 - math.floor(math.log10(magnitude)))
    return f"{value:.{decimals}f}"


def size(nbytes: float | None, signed: bool = False) -> str:
    """``512 B``, ``6.00 MiB``, ``1.90 GiB``; ``signed`` shows the sign (``+6.00 MiB``, ``−64.0 KiB``)."""
    if nbytes is None or not math.isfinite(nbytes):
        return MISSING
    sign = ("+" if nbytes > 0 else "−" if nbytes < 0 else "") if signed else ("−" if nbytes < 0 else "")
    magnitude = abs(nbytes)
    exponent = 0 if magnitude < KiB else min(int(math.log(magnitude, 1024)), len(_SIZE_UNITS) - 1)
    scaled = magnitude / 1024**exponent
    if scaled >= 1023.5 and exponent < len(_SIZE_UNITS) - 1:  # 1023.9 KiB rounds to 1,024: say 1.00 MiB
        exponent, scaled = exponent + 1, max(1.0, scaled / 1024)
    text = f"{magnitude:.0f}" if exponent == 0 else significant(scaled)
    return f"{sign}{text} {_SIZE_UNITS[exponent]}"


def size_unit(peak: float) -> tuple[float, str]:
    """The binary unit a chart of values up to ``peak`` bytes is drawn in: (scale, label)."""
    exponent = 0 if peak < KiB else min(int(math.log(peak, 1024)), len(_SIZE_UNITS) - 1)
    return 1024**exponent, _SIZE_UNITS[exponent]


def duration(seconds: float | None) -> str:
    """``3.0 µs``, ``850 µs``, ``4.20 ms``, ``1.25 s``, ``2 min 5 s``, ``1 h 2 min``."""
    if seconds is None or not math.isfinite(seconds):
        return MISSING
    if seconds < 0:
        return "−" + duration(-seconds)
    if seconds == 0:
        return "0 s"
    if seconds < 1e-3:
        return f"{significant(seconds * 1e6)} µs"
    if seconds < 1:
        return f"{significant(seconds * 1e3)} ms"
    if seconds < 60:
        return f"{significant(seconds)} s"
    minutes, rest = divmod(round(seconds), 60)
    if minutes < 60:
        return f"{minutes} min {rest} s" if rest else f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


def rate(per_second: float | None, unit: str) -> str:
    """A count per second with a decimal prefix (``1.23k samples/s``, ``45.6 steps/s``); a byte rate in binary."""
    if per_second is None or not math.isfinite(per_second):
        return MISSING
    if unit == "B":
        return size(per_second) + "/s"
    number, prefix = _decimal(per_second)
    return f"{number}{prefix} {unit}/s"


def number(value: float | None) -> str:
    """A count or rate without its unit, with a decimal prefix: ``68.6``, ``1.23k``, ``4.56M``."""
    if value is None or not math.isfinite(value):
        return MISSING
    digits, prefix = _decimal(value)
    return digits + prefix


def flops(per_second: float | None) -> str:
    """FLOP/s with the prefix on the unit, as GPU datasheets quote them (``312 TFLOP/s``)."""
    if per_second is None or not math.isfinite(per_second):
        return MISSING
    number, prefix = _decimal(per_second)
    return f"{number} {prefix}FLOP/s"


def _decimal(value: float) -> tuple[str, str]:
    for scale, prefix in _RATE_PREFIXES:
        if abs(value) >= scale:
            return significant(value / scale), prefix
    return significant(value), ""


def percent(fraction: float | None) -> str:
    """A share (0..1) as a percentage: ``42%``, ``4.2%``, ``0.42%``, ``<0.01%``."""
    if fraction is None or not math.isfinite(fraction):
        return MISSING
    value = fraction * 100
    if 0 < abs(value) < 0.01:
        return "<0.01%"
    if abs(value) >= 10:
        return f"{value:.0f}%"
    return f"{significant(value)}%"


def ratio(x: float | None) -> str:
    """A speedup or ratio: ``×1.46``, ``×0.71``, ``×12``."""
    if x is None or not math.isfinite(x):
        return MISSING
    return f"×{x:.2f}" if x < 10 else f"×{x:.0f}"


def count(n: float | None) -> str:
    """A count with thousands separators; a fraction with three significant digits."""
    if n is None:
        return MISSING
    if float(n).is_integer():
        return f"{int(n):,}"
    return significant(n)
