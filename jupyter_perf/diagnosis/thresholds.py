"""Every number a diagnosis rule compares against, named, with where it comes from.

One frozen dataclass per rule family and one module-level instance of each, so a
rule reads ``INPUT_PIPELINE.data_wait_share`` rather than a bare 0.10, docs can
name the field, and a test or benchmark can build a stricter copy with
``dataclasses.replace``. Sources, abbreviated in the comments:

* TB plugin: the retired PyTorch TensorBoard profiler plugin (torch-tb-profiler),
  whose ``analyze()`` advised num_workers when "DataLoader time > 5% of step",
  flagged "GPU utilization < 50%" and "peak memory > 90% of device memory".
* TraceML: its step-time straggler rules warn at 10% of a step and go critical
  at 20% (its wait-share rule at 15% / 25%), and it refuses to diagnose before
  a minimum number of steps (20 live, 50 for memory trends).
* measured: our own measurements, on this project's dev machine unless noted.

Shares are fractions of the mean step (0..1); utilisation is percent (0..100);
sizes are bytes; times are seconds unless the name says ``us``.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..trend import WARMUP_FRACTION

MB = 1e6


@dataclass(frozen=True)
class InputPipelineThresholds:
    #: Fewer steps and the first, cold batches dominate the mean (TraceML gates the same way).
    min_steps: int = 5
    #: TB plugin advised workers above 5%; we fire at TraceML's 10% warn share, because
    #: data_wait also holds the main process's own next() cost, which is never zero.
    data_wait_share: float = 0.10
    #: TraceML's critical share: above it the wait is a first-order cost.
    data_wait_share_high: float = 0.20
    #: A wait per step below this is the loader's own per-batch cost, not slow loading:
    #: measured here, next() on an in-memory TensorDataset costs 26 us at batch 1 and
    #: 163 us at batch 64, while handing a batch over from a worker costs ~0.9-1.3 ms,
    #: so no worker can take it away; launch_overhead counts it as fixed per-step cost.
    min_data_wait_s: float = 200e-6
    #: Workers suggested when a loader has none: PyTorch examples' usual 4, capped by cores.
    min_suggested_workers: int = 4
    #: Dataset classes already in memory: measured on an H200, pin_memory + 4 workers on a
    #: TensorDataset of 38 MB batches ran x0.71, so no gain is promised for them.
    in_memory_datasets: tuple[str, ...] = ("TensorDataset",)


@dataclass(frozen=True)
class DiskIoThresholds:
    #: Storage read rate over the run that counts as "reading the dataset": well above a
    #: notebook kernel's background reads (imports, logs) and reachable by random
    #: small-file reads on a spinning disk or network storage, where storage is the wait.
    read_bytes_per_s: float = 10 * MB
    #: Storage bytes per step that count as the batch itself being read (a few dozen JPEGs).
    read_bytes_per_step: float = 1 * MB
    #: Sampler intervals after the first step needed to judge the read rate by its median (half the run
    #: read at least that fast) rather than its mean: with three, one burst of imports or a checkpoint
    #: load in one interval no longer decides. Fewer (a run under ~0.3 s at 10 Hz): the mean after the
    #: first step, whose reads are discounted either way (sampling/host.py FirstStepReads).
    min_intervals: int = 3


@dataclass(frozen=True)
class TransferThresholds:
    #: Same gate as the input pipeline: with fewer steps the cold first ones dominate the mean.
    min_steps: int = 5
    #: Same 10% / 20% shares as the input pipeline (TraceML): a copy is time the step waits.
    h2d_share: float = 0.10
    h2d_share_high: float = 0.20
    #: Pinning is worth proposing only when most copied bytes are pageable.
    pageable_fraction: float = 0.5
    #: Pinned over pageable host-to-device bandwidth, the ratio CUDA's bandwidthTest
    #: typically shows on PCIe; used for the Amdahl estimate of dataloader.pin_memory.
    pinned_speedup: float = 2.0


@dataclass(frozen=True)
class GpuUtilThresholds:
    #: TB plugin: "GPU utilization < 50%" is a starved device. Shared by host_sync and
    #: launch_overhead so both mean the same thing by "the GPU idled".
    starved_util: float = 50.0


@dataclass(frozen=True)
class LaunchThresholds:
    #: Same gate as the input pipeline: with fewer steps the cold first ones dominate the mean.
    min_steps: int = 5
    #: Mean time per leaf-module call under which fixed per-call cost matters: measured
    #: here, calling nn.Linear(4, 4) on a 1x4 input costs 8.7 us with grad, ReLU 2.9 us,
    #: so a 50 us leaf spends ~1/6 of its time on the call itself.
    us_per_leaf_call: float = 50.0
    #: The fixed cost of one leaf call (measured: nn.Linear(4, 4) with grad, 8.7 us,
    #: torch 2.13 CPU); overhead fraction ~= leaf_call_floor_us / us_per_leaf_call.
    leaf_call_floor_us: float = 8.0
    #: "Small step": a step longer than this with tiny leaves means thousands of leaf
    #: calls per step, a Python loop over modules rather than the tiny-batch case.
    max_step_s: float = 0.1
    #: Per sample (CPU): at most this many samples per step is a tiny batch, where a layer call's reading
    #: of its weights is paid for few samples. Measured here (BERT inference, 1 thread, hidden 128-768,
    #: 16-256 tokens): from batches of 1 and 4, batching to 32 still gained x1.4-x8 per sample wherever the
    #: fixed part below was a third of the call; the view is kept to small batches so embedding tables
    #: (counted as weights but read a row at a time) cannot make a big batch look fixed-cost bound.
    small_batch_samples: int = 8
    #: Bytes per second a layer call reads its weights at, for the fixed part of a call at a tiny batch
    #: (floor + weight bytes / this). Measured here, BERT at batch 1 and 16 tokens vs 32 samples: the
    #: per-call fixed part was ~150 us for 1 MB of weights per layer (hidden 512) and ~340 us for 2.3 MB
    #: (hidden 768), ~8 GB/s after the call floor; it predicted the fixed fraction of the other sizes
    #: within ~0.15 (hidden 256: 0.74 vs 0.73 measured at 16 tokens, 0.43 vs 0.41 at 64).
    weight_read_bytes_per_s: float = 8e9
    #: The fixed part must be at least this fraction of the measured call for tiny batches to be named.
    #: Measured (same grid): estimated >= 0.37 -> batching gained x1.4-x8 per sample; <= 0.18 (256 tokens,
    #: or hidden 768 at 64+ tokens x 32) -> x0.9-x1.15, compute-bound.
    small_batch_fixed_fraction: float = 0.3
    #: Share of the step the overhead (or unexplained GPU idle) must reach (TraceML warn).
    share: float = 0.10
    share_high: float = 0.20
    #: (The larger batch dataloader.batch_size proposes is catalog.BATCH_SIZE: the fix uses the same rule.)


@dataclass(frozen=True)
class SyncThresholds:
    #: Same gate as the input pipeline: with fewer steps the cold first ones dominate the mean.
    min_steps: int = 5
    #: One sync per step is already enough to drain the device's queue once a step.
    syncs_per_step: float = 1.0
    #: Share of the step the host sits blocked in syncs. A sync that returns at once (the
    #: GPU had already drained) costs nothing: the host, not the sync, is then the limit.
    blocked_share: float = 0.10
    #: Recoverable share (unexplained GPU idle, at most the blocked share) at which syncs
    #: are named the cause (TraceML warn/crit).
    share: float = 0.10
    share_high: float = 0.20


@dataclass(frozen=True)
class MemoryCapacityThresholds:
    #: TB plugin: "peak memory > 90% of device memory" (TraceML's pressure warn is 92%).
    capacity_fraction: float = 0.90


@dataclass(frozen=True)
class MemoryLeakThresholds:
    #: A slope needs steps to be a trend; twice the timing rules' minimum.
    min_steps: int = 10
    #: Samples (after warm-up) the line is fitted through.
    min_samples: int = 5
    #: The first 20% of steps fill caches, allocator pools and optimizer state (the same for a comparison's
    #: growth per step: trend.py).
    warmup_fraction: float = WARMUP_FRACTION
    #: Total growth over the fitted steps below which RSS noise (allocator arenas,
    #: page cache of mapped files) could explain it.
    min_growth_bytes: float = 32 * MB
    #: A leak grows steadily; R^2 >= 0.8 separates a line from a step or a plateau.
    min_r2: float = 0.8
    #: A container accumulates graphs when it gained at least this many graph-holding tensors during
    #: the run ... (an RNN's ``(h, c)`` or a ModelOutput's loss and logits, rebound each step, hold 2-3
    #: and gain none; measured with word_language_model- and Hugging Face-style loops in tests/)
    min_graphs_gained: int = 3
    #: ... and at least this many per step run since it was first seen: ``losses.append(loss)`` gains 1
    #: a step; a fixed container first seen at the end (no census during the run) has its whole content
    #: spread over every step, so a dict of 4 losses rebuilt each step stays below this after 8 steps.
    graphs_per_step: float = 0.5


@dataclass(frozen=True)
class InferenceThresholds:
    #: A few grad-enabled forwards can be a sanity check; this many is a pattern.
    min_forward_calls: int = 5


@dataclass(frozen=True)
class ComputeThresholds:
    #: Below this no bottleneck is named at all (bottleneck "none").
    min_steps: int = 5
    #: Outside forward/backward/optimizer above this share, say so in the compute finding
    #: (TraceML's wait-heavy warn is 15%; 30% keeps the note for clear cases).
    other_share_note: float = 0.30
    #: optimizer.fused is proposed only if the optimizer phase is at least this share.
    optimizer_share: float = 0.05
    #: TF32 tensor cores exist from compute capability 8.0 (Ampere).
    tf32_min_capability: float = 8.0
    #: torch's default thread count is the physical cores, half the logical ones on SMT
    #: machines; fewer than this fraction of the available cores leaves cores idle.
    min_thread_fraction: float = 0.5


@dataclass(frozen=True)
class LanguageThresholds:
    """Language models: padding, attention, generation (diagnosis/language.py)."""

    #: Same gate as the timing rules: with fewer steps a cold first batch can carry the padding share.
    min_steps: int = 5
    #: Share of the token positions that are padding: the model's math on them is wasted, so at a fifth of the
    #: positions it is at least TraceML's critical share (20%) of the work, and grouping lengths can gain up to
    #: x1.25; below that a sort and less random batches buy little (Hugging Face's ``group_by_length`` docs
    #: motivate it by "minimize padding"; measured here: benchmarks/fix_efficacy.py's padding-heavy set).
    padding_share: float = 0.20
    #: Half the positions padding: half the step's model math is spent on nothing.
    padding_share_high: float = 0.50
    #: Calls of one model each one token longer than the last, with the same prefix, before the run is named
    #: generation without a cache: a few could be chance (batches of random lengths), eight in a row are a
    #: decoding loop (and 8 new tokens already cost ~4.5x the tokens a cache would compute, at a 1-token prompt).
    min_regrown_calls: int = 8
    #: ... and at least this share of the model's calls on token ids (the prompt's first call never regrows).
    regrown_share: float = 0.5
    #: Decoding calls (regrown or single-token) of one sequence at a time before batched generation is advised.
    #: Measured here (a GPT-2 of 2 layers of width 64, generate() with its cache, 1 thread, CPU): a decoding step
    #: took 0.94 ms for 1 sequence, 1.11 ms for 8 and 1.59 ms for 32, i.e. 936, 139 and 50 us per token: a step
    #: reads every weight whatever the batch (launch_overhead's small-batch view).
    min_decode_calls: int = 8


@dataclass(frozen=True)
class DistributedThresholds:
    #: Same gate as the other time rules: with fewer steps the cold first ones dominate the mean.
    min_steps: int = 5
    #: Exposed communication share of the step (time blocked on collectives, not hidden behind backward):
    #: TraceML's 10% warn / 20% critical shares, as for the data wait.
    communication_share: float = 0.10
    communication_share_high: float = 0.20
    #: A rank whose own work per step (its step minus its time blocked in collectives) exceeds the median
    #: rank's by this margin is a straggler: TraceML's step-time straggler rule warns at 10% over the
    #: median rank, critical at 20%.
    straggler_margin: float = 0.10
    straggler_margin_high: float = 0.20
    #: ... provided the other ranks lose at least this share of their step waiting for it (TraceML's warn
    #: share): in a healthy lockstep loop a rank a few percent slower costs the others next to nothing.
    straggler_lost_share: float = 0.10
    #: A GPU whose NVML mean utilisation stays under this through the run did no work (an idle device
    #: reads 0%; 5% leaves room for another process's brief use).
    idle_gpu_util: float = 5.0
    #: Buckets a backward should hand over for all-reduce to overlap with backward: with one, the first
    #: all-reduce starts only when the last gradient is computed, so nothing overlaps; DDP's notes tune
    #: bucket_cap_mb so a few buckets fill while backward runs.
    target_buckets: int = 4
    #: Models with fewer gradient bytes than this fit one bucket whatever its cap: splitting them buys
    #: latency, not overlap (DDP's own first bucket is 1 MiB).
    min_split_bytes: int = 4 * 2**20


INPUT_PIPELINE = InputPipelineThresholds()
DISK_IO = DiskIoThresholds()
TRANSFERS = TransferThresholds()
GPU_UTIL = GpuUtilThresholds()
LAUNCH = LaunchThresholds()
SYNC = SyncThresholds()
MEMORY_CAPACITY = MemoryCapacityThresholds()
MEMORY_LEAK = MemoryLeakThresholds()
INFERENCE = InferenceThresholds()
COMPUTE = ComputeThresholds()
LANGUAGE = LanguageThresholds()
DISTRIBUTED = DistributedThresholds()
