"""One unit system wherever a person reads a number (jupyter_perf/units.py)."""

import pytest

from jupyter_perf import units


@pytest.mark.parametrize(
    "nbytes, text",
    [(0, "0 B"), (512, "512 B"), (1024, "1.00 KiB"), (6 * 2**20, "6.00 MiB"), (1.9 * 2**30, "1.90 GiB"),
     (150 * 2**20, "150 MiB"), (2**30 * 1023.99, "1.00 TiB"), (-65536, "−64.0 KiB")],
)
def test_sizes_are_binary_with_three_significant_digits(nbytes, text):
    assert units.size(nbytes) == text


def test_a_signed_size_shows_growth_and_shrinkage():
    assert units.size(6 * 2**20, signed=True) == "+6.00 MiB"
    assert units.size(-0.06 * 2**20, signed=True) == "−61.4 KiB"
    assert units.size(None) == "—"


@pytest.mark.parametrize(
    "seconds, text",
    [(3e-6, "3.00 µs"), (850e-6, "850 µs"), (4.2e-3, "4.20 ms"), (1.25, "1.25 s"), (125, "2 min 5 s"),
     (3725, "1 h 2 min"), (0, "0 s")],
)
def test_durations(seconds, text):
    assert units.duration(seconds) == text


def test_rates_shares_and_ratios():
    assert units.rate(1234, "samples") == "1.23k samples/s"
    assert units.rate(45.6, "steps") == "45.6 steps/s"
    assert units.rate(3.2e8, "B") == "305 MiB/s"
    assert units.flops(3.12e14) == "312 TFLOP/s"
    assert [units.percent(f) for f in (0.42, 0.042, 0.000042)] == ["42%", "4.20%", "<0.01%"]
    assert [units.ratio(x) for x in (1.456, 0.71, 12.3)] == ["×1.46", "×0.71", "×12"]


def test_a_chart_picks_the_unit_of_its_peak():
    assert units.size_unit(3 * 2**30) == (2**30, "GiB")
    assert units.size_unit(200 * 2**20) == (2**20, "MiB")
