/**
 * A Tune click's measured curve as table rows: the value, its rate, a bar
 * scaled to the fastest, and what the row is (chosen, current, notes). Pure.
 */

import { number } from '../units';
import { ICurve } from './model';

/** Pixels of the fastest value's bar. */
export const BAR_PX = 120;

export interface ICurveLine {
  value: string;
  rate: string;
  barPx: number;
  note: string;
  chosen: boolean;
}

export function curveLines(curve: ICurve): ICurveLine[] {
  const best = Math.max(0, ...curve.rows.map(r => r.samples_per_s ?? 0)) || 1;
  return curve.rows.map(row => {
    const mark = row.chosen ? '← chosen' : row.current ? '(current)' : '';
    return {
      value: String(row.value),
      rate: number(row.samples_per_s),
      barPx: Math.round((BAR_PX * (row.samples_per_s ?? 0)) / best),
      note: [mark, row.note].filter(Boolean).join(' · '),
      chosen: row.chosen
    };
  });
}
