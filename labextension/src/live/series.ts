/**
 * A timeline panel's data: its lines' last points (rollover) and step markers,
 * the y range they need, and round tick values. Pure; `strip.ts` draws it.
 */

import { missing } from '../units';
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

  /** `[lo, hi]` of the y axis: fixed, or from `min` to the highest value plus padding. */
  yRange(): [number, number] {
    const { min, max, padding = 0 } = this._spec.y;
    if (max !== undefined) {
      return [min, max];
    }
    let top = 0;
    for (const column of this.columns) {
      for (const v of column) {
        if (v > top) {
          top = v;
        }
      }
    }
    return [min, top > 0 ? top * (1 + padding) : 1];
  }
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
