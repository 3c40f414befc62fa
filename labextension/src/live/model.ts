/**
 * What the kernel sends the live dashboard (jupyter_perf/ui/dashboard.py,
 * jupyter_perf/ui/timeline_panels.py): `meta` once, then a `frame` per push.
 * Field names are Python's. A value the sampler could not read is null.
 */

export type Value = number | null;

/** A timeline panel: its title and unit, its y axis, and one line per series. */
export interface IPanelSpec {
  title: string;
  /** A label (`%`, `% of the machine's cores`), or `bytes`: sizes, written in the binary unit the axis's top calls for. */
  unit: string;
  /** Fixed (`max` set: percents, GPU memory up to a device's capacity) or following the data from `min`, its top rounded up to a tick. */
  y: { min: number; max?: number; padding?: number };
  /** The bottom panel carries the time axis; the top one labels the step markers. */
  time_axis: boolean;
  step_labels: boolean;
  series: { column: string; label: string; color: string }[];
}

/** Fixed for the run. */
export interface IMeta {
  cores: number;
  gpus: { index: number; name: string; mem_total: Value }[];
  /** Why there is no GPU card (no driver, no nvidia-ml-py), when `gpus` is empty. */
  gpu_note: string | null;
  phase_colors: { [phase: string]: string };
  /** Seconds between a row's sampling and the earliest it can be shown: one push period plus a margin. */
  delay: number;
  panels: IPanelSpec[];
  /** Points per line, and step markers, the browser keeps. */
  rollover: number;
  mark_rollover: number;
}

/** The last step accounted: its number, wall time and phase seconds. */
export interface IStep {
  n: number;
  wall: number;
  phases: { [phase: string]: Value };
}

/** A rank the cell launched, as the dashboard shows it (jupyter_perf/ui/ranks.py `live_rows`). */
export interface IRankRow {
  label: string;
  steps: Value;
  step_s: Value;
  steps_per_s: Value;
  phases: { [phase: string]: Value };
  /** Percent of the machine's cores. */
  cpu: Value;
  rss: Value;
  gpu: Value;
}

/** The run at the moment of a push (`Dashboard.status`). */
export interface IStatus {
  /** Seconds since the run started, on the rows' clock. */
  t: number;
  /** Steps closed so far, counted as each one closes. */
  steps: number;
  /** Over the last two seconds; null until a quarter second of history, or unknown. */
  steps_per_s: Value;
  samples_per_s: Value;
  tokens_per_s: Value;
  step: IStep | null;
  ranks?: IRankRow[];
}

/** One GPU's reading: utilisation %, memory used and total (bytes), power (W), temperature (°C). */
export type GpuReading = [Value, Value, Value, Value, Value];

/** One sample. */
export interface IRow {
  /** Seconds since the run started. */
  t: number;
  /** CPU in percent of the machine's cores: all of them, this kernel's and its workers'; each core's own. */
  cpu: Value;
  proc: Value;
  cores: Value[];
  /** Resident memory of the kernel, of its DataLoader workers, and what the machine has available (bytes). */
  rss: Value;
  rssc: Value;
  avail: Value;
  gpus: (GpuReading | null)[];
  /** The values the timelines plot, by column (`IPanelSpec.series[].column`). */
  p: { [column: string]: Value };
  /** Step markers passed at this sample: `[t, step]`. */
  marks?: [number, number][];
}

/** One push: a sequence number, the rows sampled since the previous push, and the run's status then. */
export interface IFrame {
  seq: number;
  rows: IRow[];
  status?: IStatus;
}
