"""StepTrace on its own: steps are counted the moment they close, accounted in batches, and both agree at the end."""

import pytest

from jupyter_perf.probes import steps as steps_module
from jupyter_perf.probes.steps import StepTrace


def timed(trace, phase, samples=None, tag=None):
    trace.end(trace.begin(phase), samples=samples, tag=tag)


@pytest.fixture
def batched(monkeypatch):
    """Accounting far apart, so everything after the first closed step waits for finish()."""
    monkeypatch.setattr(steps_module, "ACCOUNT_EVERY_S", 3600.0)


def test_forward_steps_count_at_once_and_account_at_the_end(batched):
    trace = StepTrace()
    accounted = []
    trace.on_account = lambda: accounted.append(trace.steps)
    for n in range(1, 101):
        timed(trace, "forward", samples=16)
        if n >= steps_module._DECIDE_AFTER:  # steps are only known once the anchor is decided
            assert trace.steps_closed == n - 1, "a step closes when the next forward begins"
    assert trace.anchor == "forward"
    assert accounted == [1], "the first closed step is accounted at once, the rest in a later batch"
    trace.finish()
    assert trace.steps == trace.steps_closed == 100
    assert trace.series.count == 100
    assert trace.samples == 1600
    assert sum(trace.phase_totals.values()) == pytest.approx(trace.wall_total)


def test_loader_epochs_close_on_the_next_batch_and_when_the_loader_runs_dry(batched):
    trace = StepTrace()
    closed_after_batch = []
    for _epoch in range(2):
        timed(trace, "data_wait", tag="iter")
        for _batch in range(3):
            timed(trace, "data_wait", samples=8)
            closed_after_batch.append(trace.steps_closed)
            for phase in ("forward", "backward"):
                timed(trace, phase)
            timed(trace, "optimizer", tag="step")
        timed(trace, "data_wait", tag="stop")
        timed(trace, "forward")  # between epochs: belongs to no step
    assert trace.anchor == "data"
    assert closed_after_batch == [0, 1, 2, 3, 4, 5]
    assert trace.steps_closed == 6
    trace.finish()
    assert trace.steps == 6 and trace.samples == 48
    assert trace.series.count == 6


def test_optimizer_steps_close_at_each_step(batched):
    trace = StepTrace()
    for n in range(1, 31):
        for phase in ("forward", "backward"):
            timed(trace, phase)
        timed(trace, "optimizer", tag="step")
        if trace.anchor is not None:
            assert trace.steps_closed == n
    assert trace.anchor == "optimizer"
    trace.finish()
    assert trace.steps == trace.steps_closed == 30
    assert trace.phase_totals["other"] >= 0.0


def test_accounting_keeps_up_within_its_period():
    trace = StepTrace()
    for _ in range(200):
        timed(trace, "forward")
    trace._account_at = 0.0  # as if the period had passed: the next closed step accounts every queued one
    timed(trace, "forward")
    assert trace.steps == trace.steps_closed == 200


@pytest.mark.parametrize("phases, offered", [(("forward",), True), (("forward", "backward"), False)])
def test_counting_is_offered_only_for_lone_forward_steps(monkeypatch, phases, offered):
    """The decision behind counting mode (test_step_sampling.py): steps that are each one short forward."""
    monkeypatch.setattr(steps_module, "ACCOUNT_EVERY_S", 0.0)  # account at every step: the decision comes at once
    trace = StepTrace()
    for _ in range(steps_module._DECIDE_AFTER + steps_module._COUNT_AFTER + 1):
        for phase in phases:
            timed(trace, phase, samples=4 if phase == "forward" else None)
    assert trace.anchor == "forward"
    assert trace.may_count is offered
    trace.finish()
    assert trace.may_count is False and trace.counting is None
    assert trace.steps == trace.steps_closed
