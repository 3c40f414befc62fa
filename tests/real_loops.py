"""Loops in the shape of real projects, written here from their structure (nothing copied), small enough for CPU.

Each is a notebook's two cells: ``setup`` builds data and model, ``cell`` is what a user profiles. What the
loop does per step is known exactly, so tests can hold the profiler's step accounting to it.

* NANOGPT: nanoGPT's train loop: batches from a ``get_batch`` function (no DataLoader), the next batch fetched
  right after the forward, ``loss.item()`` and ``zero_grad`` after ``optimizer.step()``.
* WORD_LM: pytorch/examples word_language_model: sequence-first LSTM, ``criterion = nn.NLLLoss()`` module,
  hidden state detached each step, gradient clipping and a hand-written SGD update (no optimizer).
* VAE: pytorch/examples vae: a DataLoader, a model returning (recon, mu, logvar), a loss function.
* HF_LOOP: a hand-written Hugging Face fine-tuning loop: ``outputs = model(**batch)``, ``outputs.loss``.
* HF_TRAINER: the same model through ``transformers.Trainer`` with ``max_steps``, whose (accelerate) loader reads
  one batch ahead.
* HF_INFERENCE: a BERT classifier run on one example at a time under ``no_grad``.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Loop:
    name: str
    setup: str
    cell: str
    #: What the loop does: its steps and the samples they take.
    steps: int
    samples: int


NANOGPT = Loop(
    "nanogpt",
    """
import time, torch
from torch import nn
from torch.nn import functional as F
torch.manual_seed(0)
train_data = torch.randint(0, 64, (50_000,))
block_size, batch_size = 32, 8

def get_batch(split):
    time.sleep(0.004)  # reading a memory-mapped shard
    ix = torch.randint(len(train_data) - block_size, (batch_size,))
    x = torch.stack([train_data[i:i + block_size] for i in ix])
    y = torch.stack([train_data[i + 1:i + 1 + block_size] for i in ix])
    return x, y

class CausalSelfAttention(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.c_attn, self.c_proj, self.heads = nn.Linear(dim, 3 * dim), nn.Linear(dim, dim), heads
        self.register_buffer("bias", torch.tril(torch.ones(block_size, block_size)).view(1, 1, block_size, block_size))
    def forward(self, x):
        B, T, C = x.size()
        q, k, v = self.c_attn(x).split(C, dim=2)
        q, k, v = (t.view(B, T, self.heads, C // self.heads).transpose(1, 2) for t in (q, k, v))
        att = (q @ k.transpose(-2, -1)) * (1.0 / (k.size(-1) ** 0.5))  # attention written out by hand
        att = F.softmax(att.masked_fill(self.bias[:, :, :T, :T] == 0, float('-inf')), dim=-1)
        return self.c_proj((att @ v).transpose(1, 2).contiguous().view(B, T, C))

class Block(nn.Module):
    def __init__(self, dim, heads):
        super().__init__()
        self.ln_1, self.attn, self.ln_2 = nn.LayerNorm(dim), CausalSelfAttention(dim, heads), nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
    def forward(self, x):
        x = x + self.attn(self.ln_1(x))
        return x + self.mlp(self.ln_2(x))

class TinyGPT(nn.Module):
    def __init__(self, vocab=64, dim=64, layers=2, heads=2):
        super().__init__()
        self.wte, self.wpe = nn.Embedding(vocab, dim), nn.Embedding(block_size, dim)
        self.h = nn.ModuleList(Block(dim, heads) for _ in range(layers))
        self.ln_f, self.lm_head = nn.LayerNorm(dim), nn.Linear(dim, vocab, bias=False)
        self.wte.weight = self.lm_head.weight  # weight tying, as GPT-2
    def forward(self, idx, targets=None):
        x = self.wte(idx) + self.wpe(torch.arange(idx.size(1)))
        for block in self.h:
            x = block(x)
        logits = self.lm_head(self.ln_f(x))
        loss = None if targets is None else F.cross_entropy(logits.view(-1, logits.size(-1)), targets.view(-1))
        return logits, loss

model = TinyGPT()
optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
""",
    """
X, Y = get_batch('train')
for iter_num in range(20):
    logits, loss = model(X, Y)
    X, Y = get_batch('train')
    loss.backward()
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    lossf = loss.item()
""",
    steps=20,
    samples=20 * 8,
)

WORD_LM = Loop(
    "word_language_model",
    """
import torch
from torch import nn
torch.manual_seed(0)
ntokens, bptt, batch = 200, 35, 20

class RNNModel(nn.Module):
    def __init__(self, ntoken, ninp=32, nhid=32, nlayers=2):
        super().__init__()
        self.encoder = nn.Embedding(ntoken, ninp)
        self.rnn = nn.LSTM(ninp, nhid, nlayers)  # sequence first, PyTorch's default
        self.decoder = nn.Linear(nhid, ntoken)
        self.nlayers, self.nhid = nlayers, nhid
    def forward(self, input, hidden):
        output, hidden = self.rnn(self.encoder(input), hidden)
        return nn.functional.log_softmax(self.decoder(output), dim=-1).view(-1, self.decoder.out_features), hidden
    def init_hidden(self, bsz):
        weight = next(self.parameters())
        return (weight.new_zeros(self.nlayers, bsz, self.nhid), weight.new_zeros(self.nlayers, bsz, self.nhid))

def repackage_hidden(h):
    return h.detach() if isinstance(h, torch.Tensor) else tuple(repackage_hidden(v) for v in h)

train_data = torch.randint(0, ntokens, (bptt * 30 + 1, batch))
model = RNNModel(ntokens)
criterion = nn.NLLLoss()
lr = 20.0
""",
    """
model.train()
hidden = model.init_hidden(batch)
for i in range(0, train_data.size(0) - 1, bptt):
    seq_len = min(bptt, len(train_data) - 1 - i)
    data, targets = train_data[i:i + seq_len], train_data[i + 1:i + 1 + seq_len].view(-1)
    model.zero_grad()
    hidden = repackage_hidden(hidden)
    output, hidden = model(data, hidden)
    loss = criterion(output, targets)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 0.25)
    for p in model.parameters():
        p.data.add_(p.grad, alpha=-lr)
""",
    steps=30,
    samples=30 * 20,
)

VAE = Loop(
    "vae",
    """
import torch
from torch import nn
from torch.nn import functional as F
from torch.utils.data import DataLoader, TensorDataset
torch.manual_seed(0)
train_loader = DataLoader(TensorDataset(torch.rand(600, 784), torch.zeros(600)), batch_size=64, shuffle=True)

class VAE(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc21, self.fc22 = nn.Linear(784, 200), nn.Linear(200, 20), nn.Linear(200, 20)
        self.fc3, self.fc4 = nn.Linear(20, 200), nn.Linear(200, 784)
    def forward(self, x):
        h = F.relu(self.fc1(x.view(-1, 784)))
        mu, logvar = self.fc21(h), self.fc22(h)
        z = mu + torch.randn_like(logvar) * torch.exp(0.5 * logvar)
        return torch.sigmoid(self.fc4(F.relu(self.fc3(z)))), mu, logvar

def loss_function(recon_x, x, mu, logvar):
    bce = F.binary_cross_entropy(recon_x, x.view(-1, 784), reduction='sum')
    return bce - 0.5 * torch.sum(1 + logvar - mu.pow(2) - logvar.exp())

model = VAE()
optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
""",
    """
model.train()
train_loss = 0
for batch_idx, (data, _) in enumerate(train_loader):
    optimizer.zero_grad()
    recon_batch, mu, logvar = model(data)
    loss = loss_function(recon_batch, data, mu, logvar)
    loss.backward()
    train_loss += loss.item()
    optimizer.step()
""",
    steps=10,  # 600 / 64, the last batch short
    samples=600,
)

_HF_DATA = """
import torch
from torch.utils.data import DataLoader, Dataset
torch.manual_seed(0)

class TokenDataset(Dataset):
    '''Random token sequences, as a tokenizer's output: input_ids, attention_mask, labels.'''
    def __init__(self, n, length=32, vocab=256):
        self.ids = torch.randint(0, vocab, (n, length))
    def __len__(self):
        return len(self.ids)
    def __getitem__(self, i):
        ids = self.ids[i]
        return {"input_ids": ids, "attention_mask": torch.ones_like(ids), "labels": ids}
"""

_TINY_GPT2 = """
from transformers import GPT2Config, GPT2LMHeadModel
model = GPT2LMHeadModel(GPT2Config(n_layer=2, n_head=2, n_embd=64, vocab_size=256, n_positions=64,
                                   bos_token_id=0, eos_token_id=0))
"""

HF_LOOP = Loop(
    "hf_loop",
    _HF_DATA + _TINY_GPT2 + """
train_dataloader = DataLoader(TokenDataset(96), batch_size=8, shuffle=True)
optimizer = torch.optim.AdamW(model.parameters(), lr=5e-5)
""",
    """
model.train()
for batch in train_dataloader:
    outputs = model(**batch)
    loss = outputs.loss
    loss.backward()
    optimizer.step()
    optimizer.zero_grad()
""",
    steps=12,
    samples=96,
)

HF_TRAINER = Loop(
    "hf_trainer",
    _HF_DATA + _TINY_GPT2 + """
import tempfile
from transformers import Trainer, TrainingArguments
args = TrainingArguments(output_dir=tempfile.mkdtemp(), max_steps=20, per_device_train_batch_size=4, report_to=[],
                         save_strategy="no", logging_strategy="no", use_cpu=True, disable_tqdm=True)
trainer = Trainer(model=model, args=args, train_dataset=TokenDataset(256))
""",
    "trainer.train()\n",
    steps=20,
    samples=80,
)

HF_INFERENCE = Loop(
    "hf_inference",
    """
import torch
from transformers import BertConfig, BertForSequenceClassification
torch.manual_seed(0)
model = BertForSequenceClassification(BertConfig(hidden_size=64, num_hidden_layers=2, num_attention_heads=2,
                                                 intermediate_size=128, vocab_size=256, num_labels=2)).eval()
examples = [torch.randint(0, 256, (1, 24)) for _ in range(40)]
""",
    """
predictions = []
with torch.no_grad():
    for input_ids in examples:
        logits = model(input_ids=input_ids, attention_mask=torch.ones_like(input_ids)).logits
        predictions.append(int(logits.argmax(-1)))
""",
    steps=40,
    samples=40,
)

ALL = (NANOGPT, WORD_LM, VAE, HF_LOOP, HF_TRAINER, HF_INFERENCE)
