/**
 * A timeline panel's data: its lines' last points (rollover) and step markers,
 * the y range they need, and round tick values. Pure; `strip.ts` draws it.
 */

import { missing, significant, sizeUnit } from '../units';
import { IPanelSpec, IRow } from './model';

export class Series {
  /** Times (s), one column of values per series of the panel (NaN: not sampled), markers `[t, step]`. */
  readonly t: number[] = [];
  readonly columns: number[][];
  readonly marks: [number, number][] = [];

  constructor(
    private readonly _spec: IPanelSpec,
    private readonly _rollover: number,
    private readonly _markRollover: number
  ) {
    this.columns = _spec.series.map(() => []);
  }

  /** Append rows, keeping the last `rollover` points per line and `markRollover` markers. */
  push(rows: IRow[]): void {
    for (const row of rows) {
      this.t.push(row.t);
      this._spec.series.forEach((s, i) => {
        const v = row.p[s.column];
        this.columns[i].push(missing(v) ? NaN : v);
      });
      this.marks.push(...(row.marks ?? []));
    }
    const extra = this.t.length - this._rollover;
    if (extra > 0) {
      this.t.splice(0, extra);
      this.columns.forEach(c => c.splice(0, extra));
    }
    if (this.marks.length > this._markRollover) {
      this.marks.splice(0, this.marks.length - this._markRollover);
    }
  }

  /** The y axis: its range, its ticks (the top one at the top where the axis follows the data) and their unit. */
  axis(): IAxis {
    const { min, max, padding = 0 } = this._spec.y;
    let top = max;
    if (top === undefined) {
      top = 0;
      for (const column of this.columns) {
        for (const v of column) {
          if (v > top) {
            top = v;
          }
        }
      }
      top *= 1 + padding;
    }
    const [scale, unit] =
      this._spec.unit === BYTES ? sizeUnit(top) : [1, this._spec.unit];
    const lo = min / scale;
    let hi = top > min ? top / scale : lo + 1;
    const { ticks, digits } = niceTicks(lo, hi, AXIS_TICKS);
    const labels = ticks.map(v => v.toFixed(digits));
    const step = ticks.length > 1 ? ticks[1] - ticks[0] : 0;
    const last = ticks[ticks.length - 1];
    if (step && last < hi - step * 1e-9) {
      if (max === undefined) {
        hi = last + step; // up to the next round value
        labels.push(hi.toFixed(digits));
      } else {
        if (hi - last < step * 0.4) {
          ticks.pop(); // too close to the top's label
          labels.pop();
        }
        // the fixed top (a GPU's capacity), as it is
        labels.push(
          Number.isInteger(hi) ? hi.toFixed(digits) : significant(hi)
        );
      }
      ticks.push(hi);
    }
    return { lo, hi, scale, unit, ticks, labels };
  }
}

/** `IPanelSpec.unit` of a panel of sizes. */
export const BYTES = 'bytes';
/** About this many ticks on a y axis. */
const AXIS_TICKS = 3;

/** A y axis in its unit: values are divided by `scale` before they are placed between `lo` and `hi`. */
export interface IAxis {
  lo: number;
  hi: number;
  scale: number;
  unit: string;
  ticks: number[];
  labels: string[];
}

/** About `count` round values (1, 2 or 5 times a power of ten apart) from `lo` to `hi`, and the decimals they need. */
export function niceTicks(
  lo: number,
  hi: number,
  count: number
): { ticks: number[]; digits: number } {
  const span = hi - lo;
  if (!(span > 0)) {
    return { ticks: [lo], digits: 0 };
  }
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10]
    .map(m => m * mag)
    .find(s => s >= raw * (1 - 1e-9)) as number; // 10 * mag > raw always
  const ticks = [];
  for (
    let v = Math.ceil(lo / step - 1e-9) * step;
    v <= hi + step * 1e-9;
    v += step
  ) {
    ticks.push(v);
  }
  return {
    ticks,
    digits: Math.max(0, -Math.floor(Math.log10(step) + 1e-9))
  };
}
