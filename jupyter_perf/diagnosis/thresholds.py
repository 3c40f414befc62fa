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
    #: Share of the step the overhead (or unexplained GPU idle) must reach (TraceML warn).
    share: float = 0.10
    share_high: float = 0.20
    #: The larger batch to propose: this many times the current one, and at least a floor,
    #: higher when nothing trains (no activations are kept for backward, so a batch costs
    #: little memory). Measured here: batch-1 inference of a small MLP gained x18-x64 at 256.
    batch_growth: int = 4
    min_training_batch: int = 64
    min_inference_batch: int = 256


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
    #: The first 20% of steps fill caches, allocator pools and optimizer state.
    warmup_fraction: float = 0.2
    #: Total growth over the fitted steps below which RSS noise (allocator arenas,
    #: page cache of mapped files) could explain it.
    min_growth_bytes: float = 32 * MB
    #: A leak grows steadily; R^2 >= 0.8 separates a line from a step or a plateau.
    min_r2: float = 0.8


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
DISTRIBUTED = DistributedThresholds()
