/**
 * What the live view shows of a sample: each gauge's arc, value and rows, the
 * header's texts and the last step's phase shares. Pure: `gauges.ts`,
 * `phases.ts` and `index.ts` put them on the page.
 */

import {
  count,
  duration,
  Maybe,
  MISSING,
  missing,
  rate,
  significant,
  size
} from '../units';
import { GpuReading, IRankRow, IRow, IStatus, IStep, Value } from './model';

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

/** A card before its first sample: the arc's track, '—', empty rows (drawn at once, so nothing looks missing). */
export function emptyGauge(kinds: GaugeKind[]): IGauge {
  return {
    pct: null,
    value: MISSING,
    rows: kinds.map(kind =>
      kind === 'line'
        ? { kind, text: '' }
        : kind === 'bar'
          ? { kind, pct: null }
          : { kind, pcts: [] }
    )
  };
}

/** The card's title: its scale, the one every CPU figure uses (the machine's cores, all busy = 100%). */
export function cpuTitle(cores: number): string {
  return `CPU · % of ${count(cores)} cores`;
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
          : `this kernel + workers ${significant(r.proc)}%`
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

/** The header's time since the run started, in whole seconds (it changes once a second): ` · 12 s`. */
export function elapsedText(seconds: number): string {
  const whole = Math.round(seconds);
  return ` · ${whole < 60 ? `${whole} s` : duration(whole)}`;
}

/** The header's throughput: ` · 1,234 steps · 45.6 steps/s · 1.46k samples/s · 187k tokens/s`. */
export function throughputText(s: IStatus): string {
  const per = (value: Maybe, unit: string) =>
    missing(value) ? '' : ` · ${rate(value, unit)}`;
  return (
    ` · ${count(s.steps)} ${s.steps === 1 ? 'step' : 'steps'}` +
    per(s.steps_per_s, 'steps') +
    per(s.samples_per_s, 'samples') +
    per(s.tokens_per_s, 'tokens')
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

/** A rank's line: `1,234 steps · 4.56 steps/s · CPU 45% · 1.20 GiB · GPU 80%`. */
export function rankText(r: IRankRow): string {
  return (
    `${count(r.steps ?? 0)} steps · ${rate(r.steps_per_s, 'steps')} · ` +
    `CPU ${wholePercent(r.cpu)} · ${size(r.rss)}` +
    (missing(r.gpu) ? '' : ` · GPU ${wholePercent(r.gpu)}`)
  );
}

/** A step's phases as one bar: a CSS gradient with each phase's share in its colour ('' when nothing was timed). */
export function phaseGradient(
  phases: { [phase: string]: Value },
  colors: { [phase: string]: string }
): string {
  const names = Object.keys(colors);
  const shares = phaseShares({ n: 0, wall: 0, phases }, names);
  const stops: string[] = [];
  let left = 0;
  for (const phase of names) {
    if (shares[phase] > 0) {
      const right = left + shares[phase];
      stops.push(`${colors[phase]} ${left.toFixed(1)}% ${right.toFixed(1)}%`);
      left = right;
    }
  }
  return stops.length ? `linear-gradient(to right, ${stops.join(', ')})` : '';
}
