"""StepTrace on its own: what delimits a step in the shapes real loops take, steps counted live from the
first ones, accounted in batches, and exact at the end."""

import time

import pytest

from jupyter_perf.probes import steps as steps_module
from jupyter_perf.probes.steps import StepTrace

MODEL, OTHER_MODEL = 1, 2  # model keys, as the module probe tags a model's forward intervals


def timed(trace, phase, samples=None, tag=None):
    trace.end(trace.begin(phase), samples=samples, tag=tag)


def train_step(trace, samples=8, after=()):
    timed(trace, "forward", samples=samples, tag=MODEL)
    timed(trace, "backward")
    timed(trace, "optimizer", tag="step")
    for phase, tag in after:
        timed(trace, phase, tag=tag)


@pytest.fixture
def batched(monkeypatch):
    """Accounting far apart, so everything after the first closed step waits for finish()."""
    monkeypatch.setattr(steps_module, "ACCOUNT_EVERY_S", 3600.0)


def test_forward_steps_count_from_the_first_and_account_at_the_end(batched):
    trace = StepTrace()
    accounted = []
    trace.on_account = lambda: accounted.append(trace.steps)
    for n in range(1, 101):
        timed(trace, "forward", samples=16, tag=MODEL)
        assert trace.steps_closed == n - 1, "a step closes when the next forward begins, decided or not"
    assert trace.anchor == "forward"
    assert accounted == [1], "the first closed step is accounted at once, the rest in a later batch"
    trace.finish()
    assert trace.steps == trace.steps_closed == 100
    assert trace.series.count == 100
    assert trace.samples == 1600
    assert sum(trace.phase_totals.values()) == pytest.approx(trace.wall_total)


def test_loader_epochs_count_the_optimizer_steps_and_keep_the_data_wait_in_them(batched):
    trace = StepTrace()
    closed_after_step = []
    for _epoch in range(2):
        timed(trace, "data_wait", tag="iter")
        for _batch in range(3):
            timed(trace, "data_wait", samples=8)
            train_step(trace)
            closed_after_step.append(trace.steps_closed)
        timed(trace, "data_wait", tag="stop")
    assert trace.anchor == "optimizer"
    assert closed_after_step == [1, 2, 3, 4, 5, 6]
    trace.finish()
    assert trace.steps == 6 and trace.samples == 48
    assert trace.phase_totals["data_wait"] > 0


@pytest.mark.parametrize("after", [[("optimizer", None)], [("forward", MODEL)], []], ids=["zero_grad", "eval", "none"])
def test_work_after_the_last_optimizer_step_is_not_a_step(batched, after):
    """nanoGPT calls zero_grad after step(); an evaluation may follow the loop: N steps for N, samples known."""
    trace = StepTrace()
    for _ in range(20):
        train_step(trace, after=[("optimizer", None)])
    for phase, tag in after:
        timed(trace, phase, samples=8, tag=tag)
    trace.finish()
    assert trace.steps == trace.steps_closed == 20
    assert trace.samples == 160 and trace.samples_known


def test_optimizer_steps_are_contiguous_so_code_between_them_is_in_a_step(batched):
    trace = StepTrace()
    for _ in range(5):
        train_step(trace, after=[("optimizer", None)])
    trace.finish()
    starts, walls = trace.series.columns()["start"], trace.series.columns()["wall"]
    for (s0, w0), s1 in zip(zip(starts, walls), starts[1:]):
        assert s0 + w0 == pytest.approx(s1, abs=1e-9), "each step begins where the last one ended"


def test_a_batch_fetched_ahead_does_not_make_a_step(batched):
    """accelerate's DataLoaderShard reads one batch ahead: 21 batches for max_steps=20."""
    trace = StepTrace()
    timed(trace, "data_wait", tag="iter")
    timed(trace, "data_wait", samples=8)
    for _ in range(20):
        timed(trace, "data_wait", samples=8)  # the next batch, fetched before this step's work
        train_step(trace)
    trace.finish()
    assert trace.steps == 20 and trace.samples == 160


def test_a_loss_module_is_forward_time_but_not_a_second_model(batched):
    """criterion = nn.CrossEntropyLoss(): its calls carry the tag "loss" and never open a step."""
    trace = StepTrace()
    for _ in range(87):
        timed(trace, "forward", samples=20, tag=MODEL)
        timed(trace, "forward", samples=None, tag="loss")
        timed(trace, "backward")
    trace.finish()
    assert trace.anchor == "forward"
    assert trace.steps == 87 and trace.samples == 87 * 20


def test_the_model_called_fewest_times_makes_the_steps(batched):
    """A decoder called per token after its encoder: the encoder's calls are the steps."""
    trace = StepTrace()
    for _ in range(30):
        timed(trace, "forward", samples=4, tag=MODEL)
        for _token in range(5):
            timed(trace, "forward", samples=4, tag=OTHER_MODEL)
    trace.finish()
    assert trace.primary == MODEL
    assert trace.steps == 30 and trace.samples == 120


def test_micro_batches_accumulated_into_one_step_add_their_samples(batched):
    trace = StepTrace()
    for _ in range(10):
        for _micro in range(4):
            timed(trace, "forward", samples=8, tag=MODEL)
            timed(trace, "backward")
        timed(trace, "optimizer", tag="step")
    trace.finish()
    assert trace.anchor == "optimizer"
    assert trace.steps == 10 and trace.samples == 320


def test_a_second_optimizer_steps_inside_the_step(batched):
    """A GAN steps two optimizers an iteration; only the first one stepped ends a step."""
    trace = StepTrace()
    for _ in range(15):
        timed(trace, "forward", samples=8, tag=MODEL)
        timed(trace, "forward", samples=8, tag=OTHER_MODEL)
        timed(trace, "forward", samples=8, tag=OTHER_MODEL)
        timed(trace, "backward")
        timed(trace, "optimizer", tag="step")
        timed(trace, "backward")
        timed(trace, "optimizer", tag="other step")
    trace.finish()
    assert trace.steps == 15 and trace.samples == 120


def test_the_live_count_is_right_before_the_anchor_is_decided(batched):
    """Slow steps: a handful of intervals, far from the decision's window, must still show as steps."""
    trace = StepTrace()
    for n in range(1, 6):
        timed(trace, "data_wait", samples=8)
        timed(trace, "forward", samples=8, tag=MODEL)
        timed(trace, "backward")
        assert trace.anchor is None
        assert trace.steps_closed == n - 1, "counted by the model's calls while undecided"
    timed(trace, "data_wait", samples=8)
    timed(trace, "forward", samples=8, tag=MODEL)
    trace.finish()
    assert trace.steps == 6 and trace.samples == 48


def test_steps_at_gives_the_true_count_for_times_before_the_decision(batched):
    trace = StepTrace()
    ends = []
    for _ in range(4):  # forwards counted provisionally, until the first optimizer step decides
        for _micro in range(2):
            timed(trace, "forward", samples=8, tag=MODEL)
            timed(trace, "backward")
        timed(trace, "optimizer", tag="step")
        ends.append(trace._last_end[0])
    assert trace.anchor == "optimizer" and trace.steps_closed == 4
    decided = trace.decided_at
    assert trace.steps_at(ends[0] - 1e-9) == 0
    assert trace.steps_at(ends[0]) == 1
    assert trace.steps_at(decided + 1) is None, "after the decision the live count was right"


def test_a_loader_without_a_model_delimits_steps_by_its_batches(batched):
    trace = StepTrace()
    timed(trace, "data_wait", tag="iter")
    for _ in range(12):
        timed(trace, "data_wait", samples=8)
    timed(trace, "data_wait", tag="stop")
    trace.finish()
    assert trace.anchor == "data"
    assert trace.steps == 12 and trace.samples == 96


def test_accounting_keeps_up_within_its_period():
    trace = StepTrace()
    for _ in range(200):
        timed(trace, "forward", tag=MODEL)
    trace._account_at = 0.0  # as if the period had passed: the next closed step accounts every queued one
    timed(trace, "forward", tag=MODEL)
    assert trace.steps == trace.steps_closed == 200


@pytest.mark.parametrize("phases, offered", [(("forward",), True), (("forward", "backward"), False)])
def test_counting_is_offered_only_for_lone_forward_steps(monkeypatch, phases, offered):
    """The decision behind counting mode (test_step_sampling.py): steps that are each one short forward."""
    monkeypatch.setattr(steps_module, "ACCOUNT_EVERY_S", 0.0)  # account at every step: the decision comes at once
    trace = StepTrace()
    for _ in range(steps_module._DECIDE_AFTER + steps_module._COUNT_AFTER + 1):
        for phase in phases:
            timed(trace, phase, samples=4 if phase == "forward" else None, tag=MODEL if phase == "forward" else None)
    assert trace.anchor == "forward"
    assert trace.may_count is offered
    trace.finish()
    assert trace.may_count is False and trace.counting is None
    assert trace.steps == trace.steps_closed


def test_time_blocked_on_a_collective_is_carved_out_of_the_phase_it_blocked(batched):
    trace = StepTrace()
    for _ in range(8):
        timed(trace, "forward", samples=8, tag=MODEL)
        timed(trace, "backward")
        backward = trace.last_duration
        trace.carve("backward", backward / 4)
        timed(trace, "optimizer", tag="step")
    trace.finish()
    totals = trace.phase_totals
    assert totals["communication"] > 0
    assert totals["communication"] == pytest.approx(totals["backward"] / 3, abs=1e-9)  # (clock resolution)
    assert sum(totals.values()) == pytest.approx(trace.wall_total)


@pytest.mark.parametrize("training", [True, False])
def test_a_collective_inside_an_open_phase_is_carved_once_that_phase_ends(batched, training):
    """A collective inside an optimizer step (ZeRO's broadcasts) or a model call (an all_gather in forward) is
    carved from that phase, in the step that phase belongs to."""
    inner = "optimizer" if training else "forward"
    trace = StepTrace()
    for _ in range(8):
        if training:
            timed(trace, "forward", samples=8, tag=MODEL)
            timed(trace, "backward")
        token = trace.begin(inner)
        time.sleep(0.001)
        trace.carve(inner, 0.0005)  # still inside the phase: booked when it ends
        trace.end(token, samples=8, tag="step" if training else MODEL)
    trace.finish()
    totals = trace.phase_totals
    assert trace.steps == 8
    assert totals["communication"] == pytest.approx(8 * 0.0005, rel=1e-6)
    assert min(trace.series.columns()[inner]) > 0
    assert sum(totals.values()) == pytest.approx(trace.wall_total)
