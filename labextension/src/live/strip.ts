/**
 * A strip chart: a panel's lines against time on one canvas, dashed step
 * markers, a few y ticks (the top one labelled); the time axis on the bottom
 * panel. The title, unit and legend are HTML above it, drawn once; the unit of
 * a panel of sizes changes with the data (MiB to GiB as memory grows), rarely.
 * Each redraw draws the whole panel: a few hundred points per line cost well
 * under a millisecond.
 */

import { count } from '../units';
import { fitCanvas, ITheme, node, setText } from './dom';
import { IPanelSpec, IRow } from './model';
import { niceTicks, Series } from './series';

/** px between two step-marker labels: closer ones are left out. */
const MIN_LABEL_GAP = 44;
/** px left of each plot for the y labels (live.css lines the panel titles up with it). */
const AXIS_WIDTH = 48;

export interface IStripChart {
  push(rows: IRow[]): void;
  draw(): void;
  resize(width: number): void;
}

/** `unit`: the element in the panel's head that names the y axis's unit. */
export function stripChart(
  parent: Element,
  spec: IPanelSpec,
  rollover: number,
  markRollover: number,
  style: ITheme,
  unit: HTMLElement
): IStripChart {
  const canvas = node('canvas', 'jpp-strip', parent);
  const height = spec.time_axis ? 112 : 88;
  canvas.style.height = `${height}px`;
  const data = new Series(spec, rollover, markRollover);
  let width = 0;

  function draw(): void {
    const { t, columns, marks } = data;
    const n = t.length;
    if (!width || !n) {
      return;
    }
    const ctx = fitCanvas(canvas, width, height);
    const bottom = spec.time_axis ? 26 : 4;
    const [x0, x1, y0, y1] = [AXIS_WIDTH, width - 8, 7, height - bottom];
    const t0 = t[0];
    const t1 = n > 1 ? t[n - 1] : t0 + 1;
    const axis = data.axis();
    const { lo, hi, scale } = axis;
    setText(unit, ` ${axis.unit}`);
    const X = (v: number) => x0 + ((v - t0) / (t1 - t0)) * (x1 - x0);
    const Y = (v: number) => y1 - ((v / scale - lo) / (hi - lo)) * (y1 - y0);
    ctx.font = style.axisFont;
    ctx.lineWidth = 1;
    // y ticks and their grid lines (ticks are in the axis's unit)
    ctx.fillStyle = style.text;
    ctx.strokeStyle = style.grid;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'middle';
    ctx.beginPath();
    axis.ticks.forEach((v, i) => {
      const y = Math.round(Y(v * scale)) + 0.5;
      ctx.moveTo(x0, y);
      ctx.lineTo(x1, y);
      ctx.fillText(axis.labels[i], x0 - 5, y);
    });
    ctx.stroke();
    // the time axis
    if (spec.time_axis) {
      const xt = niceTicks(t0, t1, Math.max(2, Math.floor((x1 - x0) / 90)));
      ctx.textAlign = 'center';
      ctx.textBaseline = 'top';
      for (const v of xt.ticks) {
        ctx.fillText(v.toFixed(xt.digits), X(v), y1 + 3);
      }
      ctx.fillText('seconds', (x0 + x1) / 2, y1 + 14);
    }
    // step markers
    ctx.save();
    ctx.setLineDash([4, 3]);
    ctx.strokeStyle = style.mark;
    ctx.textAlign = 'right';
    ctx.textBaseline = 'top';
    ctx.beginPath();
    let labelled = -Infinity;
    for (const [mt, step] of marks) {
      if (mt < t0 || mt > t1) {
        continue;
      }
      const x = Math.round(X(mt)) + 0.5;
      ctx.moveTo(x, y0);
      ctx.lineTo(x, y1);
      if (spec.step_labels && x - labelled >= MIN_LABEL_GAP) {
        ctx.fillText(`step ${count(step)}`, x - 2, y0);
        labelled = x;
      }
    }
    ctx.stroke();
    ctx.restore();
    // the lines, broken where a value is missing
    ctx.lineWidth = 1.5;
    ctx.lineJoin = 'round';
    spec.series.forEach((s, i) => {
      const c = columns[i];
      ctx.strokeStyle = s.color;
      ctx.beginPath();
      let pen = false;
      for (let k = 0; k < n; k++) {
        if (Number.isNaN(c[k])) {
          pen = false;
          continue;
        }
        const x = X(t[k]);
        const y = Y(Math.min(hi * scale, Math.max(lo * scale, c[k])));
        if (pen) {
          ctx.lineTo(x, y);
        } else {
          ctx.moveTo(x, y);
        }
        pen = true;
      }
      ctx.stroke();
    });
  }

  return {
    push: rows => data.push(rows),
    draw,
    resize(w: number): void {
      width = w;
    }
  };
}
