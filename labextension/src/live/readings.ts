/**
 * What the live view shows of a sample: each gauge's arc, value and rows, the
 * header's texts and the last step's phase shares. Pure: `gauges.ts`,
 * `phases.ts` and `index.ts` put them on the page.
 */

import {
  count,
  duration,
  Maybe,
  missing,
  rate,
  significant,
  size
} from '../units';
import { GpuReading, IRate, IRow, IStep, Value } from './model';

/** The rows of a gauge card under its arc: a line of text, a bar filled to a percent, one bar per core. */
export type GaugeRow =
  | { kind: 'line'; text: string }
  | { kind: 'bar'; pct: Maybe }
  | { kind: 'cores'; pcts: Value[] };

export type GaugeKind = GaugeRow['kind'];

/** A gauge's arc filled to `pct`, `value` written in it, then its rows. */
export interface IGauge {
  pct: Maybe;
  value: string;
  rows: GaugeRow[];
}

/** The rows each card has, in order (its canvas's height is fixed from them when the card is made). */
export const CPU_ROWS: GaugeKind[] = ['line', 'cores'];
export const MEMORY_ROWS: GaugeKind[] = ['bar', 'line', 'line'];
export const GPU_ROWS: GaugeKind[] = ['bar', 'line', 'line'];

/** A gauge's reading on its 0–100 scale, whole: digits that change with every frame must stay readable. */
export function wholePercent(v: Maybe): string {
  return missing(v) ? '—' : `${v.toFixed(0)}%`;
}

export function cpuGauge(r: IRow): IGauge {
  return {
    pct: r.cpu,
    value: wholePercent(r.cpu),
    rows: [
      {
        kind: 'line',
        text: missing(r.proc)
          ? ''
          : `this kernel + workers ${significant(r.proc)}% of one core`
      },
      { kind: 'cores', pcts: r.cores ?? [] }
    ]
  };
}

/** The kernel's and its workers' memory against what they use plus what the machine has available. */
export function memoryGauge(r: IRow): IGauge {
  const used = (r.rss ?? 0) + (r.rssc ?? 0);
  const total = missing(r.avail) ? null : used + r.avail;
  return {
    pct: total === null ? null : (100 * used) / total,
    value: size(used),
    rows: [
      { kind: 'bar', pct: total === null ? null : (100 * used) / total },
      { kind: 'line', text: `kernel ${size(r.rss)} + workers ${size(r.rssc)}` },
      { kind: 'line', text: `of ${size(total)} available` }
    ]
  };
}

export function gpuGauge([util, used, total, power, temp]: GpuReading): IGauge {
  const whole = (v: Maybe) => (missing(v) ? '—' : v.toFixed(0));
  return {
    pct: util,
    value: wholePercent(util),
    rows: [
      {
        kind: 'bar',
        pct: missing(used) || !total ? null : (100 * used) / total
      },
      { kind: 'line', text: `${size(used)} / ${size(total)}` },
      { kind: 'line', text: `${whole(power)} W · ${whole(temp)} °C` }
    ]
  };
}

/** The header's time since the run started: ` · 12.3 s`. */
export function elapsedText(t: number): string {
  return ` · ${duration(t)}`;
}

/** The header's throughput: ` · 1,234 steps · 45.6 steps/s · 1.46k samples/s`. */
export function throughputText(r: IRate): string {
  return (
    ` · ${count(r.steps)} steps` +
    (missing(r.steps_per_s) ? '' : ` · ${rate(r.steps_per_s, 'steps')}`) +
    (missing(r.samples_per_s) ? '' : ` · ${rate(r.samples_per_s, 'samples')}`)
  );
}

export function stepText(step: IStep): string {
  return `step ${count(step.n)}: ${duration(step.wall)}`;
}

/** Each phase's percent of the step (0 for a phase not measured; all 0 when nothing was). */
export function phaseShares(
  step: IStep,
  phases: string[]
): { [phase: string]: number } {
  const total = Object.values(step.phases).reduce<number>(
    (a, b) => a + (b || 0),
    0
  );
  const shares: { [phase: string]: number } = {};
  for (const phase of phases) {
    shares[phase] = total > 0 ? (100 * (step.phases[phase] || 0)) / total : 0;
  }
  return shares;
}

/** Where each phase's segment of the stacked bar goes: moved right by the shares before it, scaled to its own. */
export function phaseTransforms(
  shares: { [phase: string]: number },
  phases: string[]
): { [phase: string]: string } {
  const transforms: { [phase: string]: string } = {};
  let left = 0;
  for (const phase of phases) {
    transforms[phase] =
      `translateX(${left.toFixed(1)}%) scaleX(${(shares[phase] / 100).toFixed(3)})`;
    left += shares[phase];
  }
  return transforms;
}
