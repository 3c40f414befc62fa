"""Language-model runs with planted waste and their healthy twins, for the tests and fix_efficacy.py.

Real ``transformers`` models from tiny configs (random weights, nothing downloaded) and a nanoGPT-style model
written by hand, each a notebook in miniature: ``setup`` builds data and model, ``cell`` is the profiled code.
Sizes keep a run to a second or two on two cores while the planted effect stays large.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class LmScenario:
    name: str
    setup: str
    cell: str
    #: The finding planted (None: a healthy run) and the optimization that removes it.
    finding: str | None
    optimization: str | None


IMPORTS = """
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, Dataset
torch.manual_seed(0)
"""

PADDED_TOKENS = '''
class PaddedTokens(Dataset):
    """Token sequences of 8 to `width` tokens, each padded to `width`, as a tokenizer with padding="max_length"."""
    def __init__(self, n, width=64, vocab=256, classes=None):
        self.lengths = torch.randint(8, width + 1, (n,))
        self.ids = torch.randint(1, vocab, (n, width))
        self.classes = classes
        self.width = width
    def __len__(self):
        return len(self.ids)
    def __getitem__(self, i):
        mask = (torch.arange(self.width) < self.lengths[i]).long()
        ids = self.ids[i] * mask
        labels = ids.masked_fill(mask == 0, -100) if self.classes is None else int(ids[0]) % self.classes
        return {"input_ids": ids, "attention_mask": mask, "labels": labels}
'''


def gpt2(layers: int = 2, width: int = 64, positions: int = 256, attention: str = "sdpa") -> str:
    return f"""
from transformers import GPT2Config, GPT2LMHeadModel
model = GPT2LMHeadModel(GPT2Config(n_layer={layers}, n_head=2, n_embd={width}, vocab_size=256, n_positions={positions},
                                   bos_token_id=0, eos_token_id=0, attn_implementation="{attention}"))
"""


TRAIN = """
model.train()
for batch in loader:
    loss = model(**batch).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
"""

PADDED_GPT2 = LmScenario(
    "padded_gpt2",
    IMPORTS + PADDED_TOKENS + gpt2() + """
loader = DataLoader(PaddedTokens(48), batch_size=8, shuffle=True)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
""",
    TRAIN,
    "padding_waste",
    "data.length_grouping",
)

EAGER_GPT2 = LmScenario(
    "eager_gpt2",
    IMPORTS + gpt2(attention="eager") + """
batches = [torch.randint(0, 256, (8, 64)) for _ in range(6)]
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
""",
    """
for input_ids in batches:
    loss = model(input_ids=input_ids, labels=input_ids).loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
""",
    "attention_eager",
    "attention.sdpa",
)

BERT_PADDED_EAGER = LmScenario(
    "bert_padded_eager",
    IMPORTS + PADDED_TOKENS + """
from transformers import BertConfig, BertForSequenceClassification
model = BertForSequenceClassification(BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                                 intermediate_size=128, vocab_size=256, num_labels=2,
                                                 attn_implementation="eager"))
loader = DataLoader(PaddedTokens(48, classes=2), batch_size=8, shuffle=True)
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
""",
    TRAIN,
    "padding_waste",
    "data.length_grouping",
)

TRAINER_PADDED = LmScenario(
    "trainer_padded",
    IMPORTS + PADDED_TOKENS + gpt2() + """
import tempfile
from transformers import Trainer, TrainingArguments
args = TrainingArguments(output_dir=tempfile.mkdtemp(), max_steps=6, per_device_train_batch_size=8, report_to=[],
                         save_strategy="no", logging_strategy="no", use_cpu=True, disable_tqdm=True)
trainer = Trainer(model=model, args=args, train_dataset=PaddedTokens(64))
""",
    "trainer.train()\n",
    "padding_waste",
    None,  # the Trainer builds its loader: the finding says what to set
)

GENERATE_NO_CACHE = LmScenario(
    "generate_no_cache",
    IMPORTS + gpt2() + "model.eval()\nprompt = torch.randint(0, 256, (1, 8))\n",
    "output = model.generate(prompt, max_new_tokens=48, min_new_tokens=48, do_sample=False, use_cache=False)\n",
    "generation_no_cache",
    "generation.kv_cache",
)

GENERATE = LmScenario(
    "generate",
    GENERATE_NO_CACHE.setup,
    "output = model.generate(prompt, max_new_tokens=48, min_new_tokens=48, do_sample=False)\n",
    None,
    None,
)

#: nanoGPT's model (tests/real_loops.py's TinyGPT) generating by re-feeding its growing sequence, as its own
#: ``generate()`` does: no cache to keep.
NANOGPT_GENERATE = """
idx = torch.zeros((1, 1), dtype=torch.long)
with torch.no_grad():
    for _ in range(24):
        logits, _ = model(idx[:, -block_size:])
        idx = torch.cat((idx, logits[:, -1, :].argmax(-1, keepdim=True)), dim=1)
"""

ALL = (PADDED_GPT2, EAGER_GPT2, BERT_PADDED_EAGER, TRAINER_PADDED, GENERATE_NO_CACHE, GENERATE)
