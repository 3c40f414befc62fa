/**
 * A profiled run in brief, as the kernel puts it beside each summary it
 * displays: the `application/vnd.jupyter-perf.report+json` part of the
 * output (`report_part` in jupyter_perf/ui/summary.py, `Report.to_dict()`'s
 * field names). The runs list (runs.ts) reads it rather than the summary's
 * HTML. Pure.
 */

import { count, duration, missing, rate, ratio } from './units';

export const REPORT_MIME = 'application/vnd.jupyter-perf.report+json';

export interface IReportPart {
  started_at: string;
  wall_time: number | null;
  steps: number;
  throughput: { steps_per_s: number | null; samples_per_s: number | null };
  bottleneck: string;
  /** The first recommendation, if any. */
  recommendation: {
    optimization: string;
    expected_speedup: number | null;
    reason: string;
  } | null;
  /** What the profiled code raised, if it did (the message's first line). */
  error: { type: string; message: string; oom: boolean } | null;
  interrupted: boolean;
}

/**
 * A run as the runs list shows it: time, bottleneck and throughput, how it
 * ended when not normally, and a tooltip with the rest. A field the run did
 * not measure is empty (the list leaves it out), never a question mark.
 */
export interface IRunFields {
  time: string;
  bottleneck: string;
  throughput: string;
  /** `failed: RuntimeError`, `out of memory`, `interrupted`, or empty for a run that ended normally. */
  state: string;
  title: string;
}

export const GO_TO_CELL = 'Go to the cell';

/** The part, when `value` is one (an output of another version, or of something else, is not). */
export function readReportPart(value: unknown): IReportPart | null {
  const part = value as IReportPart;
  return typeof part === 'object' &&
    part !== null &&
    typeof part.bottleneck === 'string' &&
    typeof part.steps === 'number' &&
    typeof part.throughput === 'object' &&
    part.throughput !== null
    ? part
    : null;
}

export function runFields(part: IReportPart): IRunFields {
  const { steps_per_s: steps, samples_per_s: samples } = part.throughput;
  const title = [GO_TO_CELL];
  if (part.started_at) {
    title.push(`started ${part.started_at}, ${count(part.steps)} steps`);
  }
  if (part.error) {
    const oom = part.error.oom ? ' [out of memory]' : '';
    title.push(`error: ${part.error.type}: ${part.error.message}${oom}`);
  }
  if (part.interrupted) {
    title.push('interrupted: Ctrl-C stopped the run');
  }
  if (part.recommendation) {
    const { optimization, expected_speedup } = part.recommendation;
    const gain =
      expected_speedup === null ? '' : ` (${ratio(expected_speedup)})`;
    title.push(`recommended: ${optimization}${gain}`);
  }
  return {
    time: missing(part.wall_time) ? '' : duration(part.wall_time),
    bottleneck: part.bottleneck,
    throughput: !missing(samples)
      ? rate(samples, 'samples')
      : !missing(steps)
        ? rate(steps, 'steps')
        : '',
    state: runState(part),
    title: title.join('\n')
  };
}

/** How a run ended, when it did not end normally: what the list marks it with. */
export function runState(part: IReportPart): string {
  if (part.error) {
    return part.error.oom ? 'out of memory' : `failed: ${part.error.type}`;
  }
  return part.interrupted ? 'interrupted' : '';
}
