/**
 * The ranks a profiled cell launched (torch.multiprocessing, accelerate's
 * notebook_launcher): one line each, their last step's phases as a bar, then
 * steps, step rate, CPU, memory and GPU (jupyter_perf/ui/ranks.py
 * `live_rows`; for many ranks the slowest, median and fastest). Text, so it
 * changes with the header, once a second.
 */

import { node, setText } from './dom';
import { IRankRow } from './model';
import { phaseGradient, rankText } from './readings';

export interface IRanksView {
  show(ranks: IRankRow[] | undefined): void;
}

interface IRankLine {
  line: HTMLElement;
  label: HTMLElement;
  bar: HTMLElement;
  text: HTMLElement;
  /** The bar's gradient as last written (the style reads it back normalised). */
  gradient: string;
}

export function ranksView(
  parent: Element,
  colors: { [phase: string]: string }
): IRanksView {
  const box = node('div', 'jpp-ranks', parent);
  box.dataset.jpp = 'ranks';
  const lines: IRankLine[] = [];
  return {
    show(ranks: IRankRow[] | undefined): void {
      const rows = ranks ?? [];
      while (lines.length < rows.length) {
        const line = node('div', 'jpp-rank', box);
        lines.push({
          line,
          label: node('span', 'jpp-rank-label', line),
          bar: node('span', 'jpp-rank-bar', line),
          text: node('span', 'jpp-caption', line),
          gradient: ''
        });
      }
      lines.forEach((view, i) => {
        const r = rows[i];
        const display = r ? '' : 'none';
        if (view.line.style.display !== display) {
          view.line.style.display = display;
        }
        if (!r) {
          return;
        }
        setText(view.label, r.label);
        const gradient = phaseGradient(r.phases, colors);
        if (view.gradient !== gradient) {
          view.gradient = view.bar.style.background = gradient;
        }
        setText(view.text, rankText(r));
      });
    }
  };
}
