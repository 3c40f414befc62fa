"""The optimizations by id: what each is called, why it helps, how sure and how costly it is, where it lives.

The one place an optimization is declared. Its class (``optimizations/<module>.py``) binds to its entry
(``entry = CATALOG["dataloader.workers"]``) and takes its id, title and numerics flag from it; the Report's
vocabulary (``report.OPTIMIZATIONS``), diagnosis's recommendation texts and ranking, and the panel's titles
read the same entry. It lives at the bottom of the package so diagnosis and the optimizations, siblings that
must not import each other, share it; it imports nothing.

Certainty and cost rank the fixes whose gain a Report cannot estimate (diagnosis/recommend.py): certain
before likely before speculative, then free before a trade-off before changed numerics. "certain": it
removes the very waste its finding measured; "speculative": it may gain nothing or fail to apply (seen
here: quantization and compile ranked above inference_mode on an evaluation without no_grad; one refused,
the other gained nothing).
"""

from __future__ import annotations

from dataclasses import dataclass

CERTAINTY = ("certain", "likely", "speculative")
COST = ("free", "tradeoff", "numerics")
#: What a fix is judged by when re-measured (``report.Comparison``): the work done per second (tokens where
#: both runs counted them, else samples, else steps), the memory a step adds (a leak fix), or the peak memory
#: (a fix that trades time for memory, which is expected to run slower).
TARGETS = ("throughput", "memory_growth", "peak_memory")


@dataclass(frozen=True)
class Entry:
    id: str
    title: str
    #: Why it helps, one clause a recommendation quotes ("a fused step updates every parameter in one kernel").
    why: str
    certainty: str
    cost: str
    #: ``module:Class`` under ``jupyter_perf.optimizations``: imported only when the optimization is used.
    implementation: str
    #: Outputs may differ (AMP, TF32, quantization, pruning, and compile's reordered float math): committing it
    #: runs the numerics guard. (Compile's cost is its compile time and graph breaks, not its rounding.)
    changes_numerics: bool = False
    #: The metric a re-measurement judges it by (one of ``TARGETS``).
    target: str = "throughput"


_ENTRIES = (
    Entry("dataloader.workers", "Load batches in worker processes",
          "worker processes load the next batches while the step runs", "certain", "tradeoff", "dataloader:Workers"),
    Entry("dataloader.pin_memory", "Pin batches in page-locked memory and copy them asynchronously",
          "pinned batches copy about twice as fast and can overlap with compute", "likely", "tradeoff",
          "dataloader:PinMemory"),
    Entry("dataloader.batch_size", "Use larger batches",
          "a larger batch spreads each step's fixed cost over more samples", "certain", "tradeoff",
          "dataloader:BatchSize"),
    Entry("precision.amp", "Automatic mixed precision (torch.autocast)",
          "autocast runs matmuls and convolutions in 16-bit on tensor cores", "likely", "numerics", "amp:Amp", True),
    Entry("precision.tf32", "TF32 tensor cores for float32 matmuls and convolutions",
          "TF32 runs float32 matmuls on tensor cores with a 10-bit mantissa", "likely", "numerics", "tf32:Tf32", True),
    Entry("layout.channels_last", "Channels-last (NHWC) memory layout for convolutions",
          "NHWC lets cuDNN pick its fastest convolution kernels", "likely", "free", "channels_last:ChannelsLast"),
    Entry("compile.torch_compile", "Compile the model with torch.compile",
          "torch.compile fuses ops and removes per-op Python overhead", "speculative", "tradeoff",
          "torch_compile:TorchCompile", True),
    Entry("compile.cuda_graphs", "Replay the model's kernels as CUDA graphs (torch.compile mode='reduce-overhead')",
          "a CUDA graph replays the whole step's kernels with one launch", "speculative", "tradeoff",
          "torch_compile:CudaGraphs", True),
    Entry("memory.checkpointing", "Activation checkpointing of the model's repeated blocks",
          "recomputing activations in backward instead of storing them frees most of their memory", "certain",
          "tradeoff", "checkpointing:Checkpointing", target="peak_memory"),
    Entry("memory.grad_accumulation", "Gradient accumulation over micro-batches",
          "smaller micro-batches with gradients accumulated keep the effective batch and shrink activations",
          "certain", "tradeoff", "grad_accumulation:GradAccumulation", target="peak_memory"),
    Entry("memory.release_graph", "Store loss values instead of autograd graphs",
          "storing .item() or .detach() values frees the graphs nothing reads", "certain", "free",
          "memory_graph:ReleaseGraph", target="memory_growth"),
    Entry("inference.inference_mode", "Run inference under torch.inference_mode()",
          "inference_mode skips recording graphs no backward reads and frees activations at once", "certain", "free",
          "inference:InferenceMode"),
    Entry("compression.quantize_dynamic", "Dynamic int8 quantization of Linear/LSTM layers (CPU inference)",
          "dynamic int8 quantization speeds up Linear/LSTM inference on the CPU", "speculative", "numerics",
          "quantize:QuantizeDynamic", True),
    Entry("compression.prune", "Magnitude pruning of Linear and convolution weights",
          "pruning zeroes the smallest weights (dense kernels rarely run faster for it)", "speculative", "numerics",
          "prune:Prune", True),
    Entry("optimizer.fused", "Fused (CUDA) or multi-tensor (CPU) optimizer step",
          "a fused step updates every parameter in one kernel", "likely", "free", "fused_optimizer:FusedOptimizer"),
    Entry("data.length_grouping", "Group samples of similar length into batches, padded to their longest",
          "batches of similar lengths, each padded to its own longest, spend no compute on padding", "certain",
          "tradeoff", "length_grouping:LengthGrouping"),
    Entry("attention.sdpa", "Fused attention (scaled_dot_product_attention)",
          "one fused scaled_dot_product_attention call replaces the matmul, mask and softmax steps", "likely",
          "free", "attention:Sdpa", True),
    Entry("generation.kv_cache", "Generate with a KV cache",
          "a KV cache feeds each new token alone instead of the whole sequence again", "certain", "free",
          "kv_cache:KvCache"),
    Entry("distributed.ddp", "DistributedDataParallel: one process per device",
          "one process per device, each on its share of the batch, gradients averaged by all-reduce", "likely",
          "tradeoff", "ddp:Ddp"),
    Entry("distributed.comm_hook", "Compressed gradient all-reduce (DDP comm hook)",
          "gradients all-reduced in 16 bits send half the bytes", "speculative", "numerics", "comm_hook:CommHook",
          True),
    Entry("distributed.bucket_cap", "DDP buckets sized for overlap",
          "smaller gradient buckets start their all-reduce while backward still runs", "speculative", "free",
          "bucket_cap:BucketCap"),
    Entry("distributed.no_sync", "Local gradient accumulation under DDP's no_sync()",
          "accumulating k micro-batches under no_sync() all-reduces once per k", "certain", "tradeoff",
          "no_sync:NoSync"),
    Entry("cpu.threads", "Match torch's CPU threads to the available cores",
          "one intra-op thread per physical core uses the CPU without contention", "likely", "free",
          "threads:Threads"),
)

#: Every optimization, by id, in the order the panel and ``--apply`` list them.
CATALOG: dict[str, Entry] = {entry.id: entry for entry in _ENTRIES}


# --------------------------------------------------------------- shared rules
@dataclass(frozen=True)
class BatchSizeRule:
    """The larger batch ``dataloader.batch_size`` proposes, one rule for the advice and the fix: this many
    times the current one, and at least a floor, higher when nothing trains (no activations are kept for
    backward, so a batch costs little memory). Measured here: batch-1 inference of a small MLP gained
    ×18-×64 at 256."""

    growth: int = 4
    min_training: int = 64
    min_inference: int = 256

    def propose(self, current: int, trains: bool | None, limit: int | None = None) -> int:
        """The batch to propose for ``current`` (``trains``: None when unknown), at most ``limit`` (the dataset)."""
        least = self.min_inference if trains is False else self.min_training
        size = max(least, self.growth * current)
        return min(size, limit) if limit else size


BATCH_SIZE = BatchSizeRule()
