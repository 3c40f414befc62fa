"""Step accounting on loops in the shape of real projects (real_loops.py): exact steps and samples, the data
a function makes counted as data, and the live step count right from the first steps."""

import threading
import time

import pytest
import real_loops
from conftest import run_setup

import jupyter_perf
from jupyter_perf.session import Session


def profiled(loop):
    namespace = run_setup(loop.setup)
    return jupyter_perf.profile(loop.cell, namespace), namespace


@pytest.mark.parametrize("loop", real_loops.ALL, ids=lambda loop: loop.name)
def test_steps_and_samples_are_exactly_the_loops(loop):
    report, _ = profiled(loop)
    assert report.error is None
    assert report.steps == loop.steps
    assert report.samples == loop.samples
    assert sum(report.phases.values()) == pytest.approx(report.step_time, rel=1e-9)
    assert len(report.step_series["wall"]) == loop.steps


def test_a_loss_module_is_not_a_model():
    report, _ = profiled(real_loops.WORD_LM)
    assert [m["name"] for m in report.signals["models"]] == ["model"]
    assert report.step_anchor == "forward"
    assert report.signals["forward"]["calls"] == 2 * real_loops.WORD_LM.steps, "the criterion's calls are forward time"


def test_data_from_a_function_is_data_wait():
    """nanoGPT's get_batch sleeps 4 ms a call: that is the input pipeline's time, not 'other'."""
    report, namespace = profiled(real_loops.NANOGPT)
    assert report.phases["data_wait"] >= 0.004
    assert report.phases["data_wait"] > report.phases["other"]
    assert report.signals["data_functions"] == [
        {"name": "get_batch", "calls": 21, "data_wait_s": pytest.approx(report.phase_totals["data_wait"], rel=0.2)}
    ]
    assert namespace["get_batch"].__module__ == "__main__" and not hasattr(namespace["get_batch"], "__wrapped__"), (
        "the function is bound again as it was"
    )


def test_a_function_the_cell_rebinds_stays_as_the_cell_left_it():
    namespace = run_setup(real_loops.NANOGPT.setup)
    cell = real_loops.NANOGPT.cell + "\ndef get_batch(split):\n    return 'rebound'\n"
    jupyter_perf.profile(cell, namespace)
    assert namespace["get_batch"]("train") == "rebound"


def test_a_generator_of_batches_is_data_wait():
    namespace = run_setup(real_loops.VAE.setup + """
import time
def batches():
    for data, _ in train_loader:
        time.sleep(0.003)
        yield data
""")
    cell = "for data in batches():\n    optimizer.zero_grad(); recon, mu, logvar = model(data)\n" \
           "    loss_function(recon, data, mu, logvar).backward(); optimizer.step()\n"
    report = jupyter_perf.profile(cell, namespace)
    assert report.steps == 10 and report.samples == 600
    assert report.phases["data_wait"] >= 0.003


def test_the_live_step_count_and_the_timeline_see_the_first_steps():
    """Slow steps (150 ms each): what the sampler and dashboard read from their threads is the number of steps
    done from the first one on, and the timeline's step column afterwards holds the true step numbers (what the
    leak fit reads). The cell notes when each of its steps ended, so no assumption on the machine's speed."""
    namespace = run_setup(real_loops.NANOGPT.setup)
    namespace["done_at"] = done_at = []
    cell = real_loops.NANOGPT.cell.replace("range(20)", "range(12)").replace(
        "    optimizer.step()\n", "    optimizer.step()\n    done_at.append(time.perf_counter())\n"
    ).replace("lossf = loss.item()", "lossf = loss.item(); time.sleep(0.15)")
    session = Session(namespace, source=cell, interval=0.05)
    seen = []
    stop = threading.Event()

    def watch():  # what the dashboard and the sampler read, from their own threads
        while not stop.wait(0.02):
            closed, t = session.trace.steps_closed, time.perf_counter()
            seen.append((t, closed))

    session.start()
    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        exec(compile(cell, "<cell>", "exec"), namespace)
    finally:
        stop.set()
        watcher.join()
        report = session.stop()
    assert report.steps == 12
    for t, closed in seen:
        done = sum(end <= t for end in done_at)
        assert done <= closed <= done + 1, "the live count is the steps done (the step closes just before its note)"
    assert any(0 < closed < 4 for _, closed in seen), "seen counting during the first steps"
    counts = [c for c in report.timeline["steps"] if c is not None]
    assert counts == sorted(counts) and counts[-1] == 12
    t0 = session.sampler.t0
    for t, count in zip(report.timeline["t"], report.timeline["steps"]):
        done = sum(end <= t0 + t for end in done_at)
        assert done <= count <= done + 1, "the column holds the steps completed by each sample's time"


@pytest.mark.parametrize("loop", [real_loops.NANOGPT, real_loops.WORD_LM, real_loops.HF_LOOP, real_loops.HF_TRAINER,
                                  real_loops.HF_INFERENCE], ids=lambda loop: loop.name)
def test_token_ids_are_counted_as_tokens(loop):
    report, namespace = profiled(loop)
    tokens = report.signals["tokens"]
    per_sample = {"nanogpt": 32, "word_language_model": 35, "hf_loop": 32, "hf_trainer": 32, "hf_inference": 24}
    assert tokens["tokens"] == tokens["real_tokens"] == loop.samples * per_sample[loop.name]
    assert report.throughput["tokens_per_s"] == pytest.approx(tokens["tokens"] / report.step_time_total)


def test_padding_is_not_counted_as_real_tokens():
    namespace = run_setup(real_loops.HF_LOOP.setup + """
class Padded(TokenDataset):
    '''Sequences of 8..32 real tokens padded to 32, as a tokenizer pads a batch to max_length.'''
    def __getitem__(self, i):
        item = super().__getitem__(i)
        mask = torch.zeros_like(item["input_ids"]); mask[: 8 + (i * 7) % 25] = 1
        return {**item, "attention_mask": mask}
train_dataloader = DataLoader(Padded(96), batch_size=8)
""")
    report = jupyter_perf.profile(real_loops.HF_LOOP.cell, namespace)
    real = sum(8 + (i * 7) % 25 for i in range(96))
    assert report.signals["tokens"] == {"tokens": 96 * 32, "real_tokens": real,
                                        "padding_share": pytest.approx(1 - real / (96 * 32))}
    assert report.throughput["real_tokens_per_s"] == pytest.approx(real / report.step_time_total)
