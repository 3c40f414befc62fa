"""The numerics guard replays a real call: models taking several inputs, positional or by keyword.

Each loop (tests/real_loops.py, in the shape of pytorch/examples' word_language_model and of Hugging
Face hand-written loops) runs under ``jupyter_perf.profile``, which records each model's first call;
an optimization that changes numerics is then applied with that report and must be checked on that
call: ``model(data, hidden)`` with a sequence-first LSTM, ``model(**batch)`` returning a ModelOutput.
The replay leaves the user's state alone: the RNG, the train/eval flags, the recorded tensors.
"""

from __future__ import annotations

import pytest
import torch
from optimization_fixtures import release_namespaces, run  # noqa: F401  (fixture)
from real_loops import HF_INFERENCE, HF_LOOP, WORD_LM

import jupyter_perf
from jupyter_perf import state
from jupyter_perf.optimizations import NotApplicable, get
from jupyter_perf.optimizations.guard import HeldBatch, compare
from jupyter_perf.optimizations.models import RECORDED

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning", "ignore::UserWarning")

#: word_language_model's evaluate(): the same model, no grad, the hidden state carried across steps.
WORD_LM_EVAL = """
model.eval()
total_loss = 0.
hidden = model.init_hidden(batch)
with torch.no_grad():
    for i in range(0, train_data.size(0) - 1, bptt):
        data, targets = train_data[i:i + bptt], train_data[i + 1:i + 1 + bptt].view(-1)
        output, hidden = model(data, hidden)
        hidden = repackage_hidden(hidden)
        total_loss += len(data) * criterion(output, targets).item()
"""

#: A causal LM scored by keyword arguments, labels included: its output is a ModelOutput with a loss.
GPT2_EVAL = """
model.eval()
losses = []
with torch.no_grad():
    for batch in train_dataloader:
        out = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"], labels=batch["labels"])
        losses.append(out.loss.item())
"""


def profiled(setup: str, cell: str):
    namespace = run(setup, {"__name__": "__main__"})
    report = jupyter_perf.profile(cell, namespace)
    assert report.error is None, report.error
    return namespace, report


def applied_on_the_recorded_call(opt_id: str, namespace: dict, cell: str, report, **params):
    """Apply with the report; the guard ran on the recorded call; the user's state is as it was; undo.

    (quantize_dynamic's int8 LSTM draws initial weights from the RNG before loading the real ones, as the
    rewritten code does when it runs: the RNG is checked where the change itself draws nothing.)
    """
    model = namespace["model"]
    call = state.current().recorded(model)
    assert call is not None
    flags = [m.training for m in model.modules()]
    saved_call = [t.clone() for t in _tensors((call.args, call.kwargs))]
    rng = torch.get_rng_state()
    change = jupyter_perf.apply(opt_id, namespace, cell=cell, report=report, **params)
    assert change.status == "applied", change.summary()
    assert change.numerics.checked_on == RECORDED and change.numerics.passed
    assert f"on {RECORDED}" in change.numerics.summary
    if opt_id != "compression.quantize_dynamic":
        assert torch.equal(torch.get_rng_state(), rng)  # the replay forked the RNG and seeded only its fork
    assert [m.training for m in model.modules()] == flags  # eval for the replay only
    assert all(torch.equal(a, b) for a, b in zip(saved_call, _tensors((call.args, call.kwargs)), strict=True))
    change.undo()
    assert namespace["model"] is model
    return change


def _tensors(value):
    if torch.is_tensor(value):
        return [value]
    if isinstance(value, dict):
        value = list(value.values())
    return [t for v in value for t in _tensors(v)] if isinstance(value, (tuple, list)) else []


# ------------------------------------------------------------ word_language_model: model(data, hidden)
def test_a_two_input_rnn_is_guarded_on_its_recorded_call():
    namespace, report = profiled(WORD_LM.setup, WORD_LM.cell)
    call = state.current().recorded(namespace["model"])
    assert len(call.args) == 2 and isinstance(call.args[1], tuple)  # (data, (h, c)), sequence first
    assert call.args[0].shape == (35, 20)
    for opt_id, params in (("precision.amp", {}), ("compression.prune", {}),
                           ("compile.torch_compile", {"backend": "eager"})):
        change = applied_on_the_recorded_call(opt_id, namespace, WORD_LM.cell, report, **params)
        if opt_id == "precision.amp":  # bfloat16 moved the outputs, log-probabilities and hidden state alike
            assert 0 < change.numerics.relative_error < 0.05


def test_a_two_input_rnn_is_quantized_after_an_evaluation_run():
    namespace, report = profiled(WORD_LM.setup, WORD_LM_EVAL)
    change = applied_on_the_recorded_call("compression.quantize_dynamic", namespace, WORD_LM_EVAL, report)
    assert "LSTM" in change.description and "Linear" in change.description
    assert 0 < change.numerics.relative_error < 0.1


def test_without_a_recording_one_input_cannot_run_it_and_the_refusal_says_what_to_do():
    namespace = run(WORD_LM.setup + "data, hidden = train_data[:35], model.init_hidden(batch)\n",
                    {"__name__": "__main__"})
    with pytest.raises(NotApplicable) as refused:  # model(data) alone: forward() is missing `hidden`
        jupyter_perf.apply("compression.prune", namespace, cell="output, hidden = model(data, hidden)\n")
    assert "model could not run on any input to check its outputs (data (TypeError: " in str(refused.value)
    assert "run a cell that calls model under %%perfprofile" in str(refused.value)
    assert namespace["model"].decoder.weight.count_nonzero() == namespace["model"].decoder.weight.numel()
    given = HeldBatch((namespace["data"], namespace["hidden"]))  # or the call, given by hand
    change = jupyter_perf.apply("compression.prune", namespace, inputs=given)
    assert change.status == "applied" and change.numerics.checked_on == "the inputs given"
    change.undo()


# ------------------------------------------------------------ Hugging Face: keyword arguments, ModelOutput
def test_a_hugging_face_model_is_guarded_on_its_keyword_call():
    namespace, report = profiled(HF_LOOP.setup, HF_LOOP.cell)
    call = state.current().recorded(namespace["model"])
    assert not call.args and set(call.kwargs) == {"input_ids", "attention_mask", "labels"}
    for opt_id, params in (("precision.amp", {}), ("compression.prune", {}),
                           ("compile.torch_compile", {"backend": "eager"})):
        change = applied_on_the_recorded_call(opt_id, namespace, HF_LOOP.cell, report, **params)
        assert change.numerics.relative_error > 0 or opt_id == "compile.torch_compile"


def test_hugging_face_models_are_quantized_after_inference_runs():
    namespace, report = profiled(HF_LOOP.setup, GPT2_EVAL)
    applied_on_the_recorded_call("compression.quantize_dynamic", namespace, GPT2_EVAL, report)
    namespace, report = profiled(HF_INFERENCE.setup, HF_INFERENCE.cell)  # BERT, one example at a time
    change = applied_on_the_recorded_call("compression.quantize_dynamic", namespace, HF_INFERENCE.cell, report)
    assert change.numerics.relative_error < 0.1


def test_a_model_output_is_compared_by_its_tensors():
    from transformers.modeling_outputs import CausalLMOutput

    logits = torch.randn(2, 5, 8)
    before = CausalLMOutput(loss=torch.tensor(2.0), logits=logits)
    moved = compare("amp_bf16", before, CausalLMOutput(loss=torch.tensor(2.0), logits=logits * 1.01))
    norm = float(logits.norm())
    assert moved.relative_error == pytest.approx(0.01 * norm / (norm**2 + 4) ** 0.5, rel=1e-4)
    lost = compare("amp_bf16", before, CausalLMOutput(logits=logits))  # the loss is gone: not comparable
    assert not lost.passed and "keys changed" in lost.summary


def test_an_explicit_input_wins_over_the_recorded_call():
    namespace, report = profiled(HF_INFERENCE.setup, HF_INFERENCE.cell)
    namespace["ids"] = torch.randint(0, 256, (2, 16))
    change = get("compression.prune").apply(namespace, HF_INFERENCE.cell, report, inputs="ids")
    assert change.numerics.checked_on == "ids"
    change.undo()
