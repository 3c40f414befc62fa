/**
 * A gauge card: its title in HTML, everything that moves on one canvas: a
 * half-circle arc filled to a percentage with the value in it, then bars and
 * caption lines. Changing text in the page costs the browser a layout and a
 * software raster of the text around it (measured: numbers updated with every
 * frame doubled the dashboard's CPU); a canvas redraw is a bitmap swap.
 */

import { Maybe, missing } from '../units';
import { fitCanvas, fitText, ITheme, node } from './dom';
import { GaugeKind, IGauge } from './readings';

const LEVEL_COLORS = { ok: '#4c78a8', warm: '#f58518', hot: '#e45756' };
const ARC = { height: 76, radius: 52, stroke: 11 }; // css px
const ROW_HEIGHT: { [kind in GaugeKind]: number } = {
  line: 15,
  bar: 11,
  cores: 26
};

export interface IGaugeCard {
  canvas: HTMLCanvasElement;
  draw(gauge: IGauge): void;
  resize(width: number): void;
}

function levelColor(pct: number): string {
  return LEVEL_COLORS[pct >= 90 ? 'hot' : pct >= 70 ? 'warm' : 'ok'];
}

function clampPct(pct: number): number {
  return Math.max(0, Math.min(100, pct));
}

/** A card titled `title` whose canvas holds the arc and the `rows` (the kinds of IGauge.rows, in order). */
export function gaugeCard(
  parent: Element,
  title: string,
  rows: GaugeKind[],
  style: ITheme
): IGaugeCard {
  const card = node('div', 'jpp-card', parent);
  node('div', 'jpp-card-title', card, title);
  const canvas = node('canvas', 'jpp-gauge', card);
  const height = ARC.height + rows.reduce((h, kind) => h + ROW_HEIGHT[kind], 0);
  canvas.style.height = `${height}px`;
  let width = 0;
  let last: IGauge | null = null;

  function draw(gauge: IGauge): void {
    last = gauge;
    if (!width) {
      return;
    }
    const ctx = fitCanvas(canvas, width, height);
    const cx = width / 2;
    const cy = ARC.radius + ARC.stroke / 2 + 4;
    ctx.lineWidth = ARC.stroke;
    ctx.strokeStyle = style.track;
    ctx.beginPath();
    ctx.arc(cx, cy, ARC.radius, Math.PI, 2 * Math.PI);
    ctx.stroke();
    if (!missing(gauge.pct)) {
      const p = clampPct(gauge.pct);
      ctx.strokeStyle = levelColor(p);
      ctx.beginPath();
      ctx.arc(cx, cy, ARC.radius, Math.PI, Math.PI * (1 + p / 100));
      ctx.stroke();
    }
    ctx.fillStyle = style.value;
    ctx.font = style.valueFont;
    ctx.textAlign = 'center';
    ctx.textBaseline = 'alphabetic';
    ctx.fillText(gauge.value, cx, cy - 2);
    let y = ARC.height;
    for (const row of gauge.rows) {
      if (row.kind === 'line') {
        ctx.fillStyle = style.text;
        ctx.font = style.font;
        ctx.textAlign = 'left';
        ctx.textBaseline = 'top';
        ctx.fillText(fitText(ctx, row.text, width), 0, y + 1);
      } else if (row.kind === 'bar') {
        fillLevel(ctx, 0, y + 2, width, 6, row.pct, false);
      } else {
        const n = Math.max(1, row.pcts.length);
        const w = Math.min(14, (width - (n - 1)) / n);
        row.pcts.forEach((pct, k) =>
          fillLevel(ctx, k * (w + 1), y + 2, w, 22, pct, true)
        );
      }
      y += ROW_HEIGHT[row.kind];
    }
  }

  /** A track filled to `pct` in the level's colour: from the left, or from the bottom (`upward`). */
  function fillLevel(
    ctx: CanvasRenderingContext2D,
    x: number,
    y: number,
    w: number,
    h: number,
    pct: Maybe,
    upward: boolean
  ): void {
    ctx.fillStyle = style.track;
    ctx.fillRect(x, y, w, h);
    if (missing(pct)) {
      return;
    }
    const p = clampPct(pct) / 100;
    ctx.fillStyle = levelColor(100 * p);
    if (upward) {
      ctx.fillRect(x, y + h * (1 - p), w, h * p);
    } else {
      ctx.fillRect(x, y, w * p, h);
    }
  }

  return {
    canvas,
    draw,
    resize(w: number): void {
      width = w;
      if (last) {
        draw(last);
      }
    }
  };
}
