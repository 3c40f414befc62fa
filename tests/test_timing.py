"""The timing tests' own yardstick (timing.py): it passes a real difference and fails where there is none."""

import random

import pytest
from timing import Z_MIN, assert_faster, rank_z


def test_a_shift_beyond_the_scatter_passes_and_noise_alone_does_not():
    rng = random.Random(0)
    slow = [rng.lognormvariate(0, 0.4) for _ in range(30)]
    same = [rng.lognormvariate(0, 0.4) for _ in range(30)]
    assert abs(rank_z(slow, same)) < Z_MIN
    with pytest.raises(AssertionError, match="not faster beyond the noise"):
        assert_faster(slow, same, "the same distribution")
    assert_faster(slow, [t / 2 for t in same], "twice as fast")
    with pytest.raises(AssertionError):
        assert_faster([t / 2 for t in same], slow, "the wrong way round")


def test_too_few_values_cannot_reach_the_margin():
    """Three rounds a side rank at most z = 1.96: a test must take enough measurements to assert anything."""
    assert rank_z([3.0, 3.1, 3.2], [1.0, 1.1, 1.2]) == pytest.approx(1.964, abs=1e-3)
    with pytest.raises(AssertionError):
        assert_faster([3.0, 3.1, 3.2], [1.0, 1.1, 1.2], "three rounds")
