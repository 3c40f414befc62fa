/**
 * One card of the optimization panel as DOM: what the change does, why, its
 * expected gain, the cells it rewrites (linked), the diff, the measured curve
 * of a Tune click, the warnings, the buttons and what the last click did,
 * and the before/after of a re-run. The verdict box at the top of the
 * summary draws the top card's buttons with the same `buttons()`.
 */

import { node } from '../live/dom';
import { curveLines } from './curve';
import { diffLines } from './diff';
import { ICard, ICellRef, ICurve } from './model';
import { enabled, IPending, status } from './status';

export const LABELS: { [action: string]: string } = {
  apply: 'Apply',
  'apply-rerun': 'Apply & re-run',
  tune: 'Tune',
  undo: 'Undo'
};
/** The buttons the verdict box carries for the top fix. */
export const VERDICT_ACTIONS = ['apply', 'apply-rerun'];
/** The button that measures, styled as the one to press. */
const ACCEPT = 'apply-rerun';

export interface IHandlers {
  click(card: ICard, action: string, button: HTMLButtonElement): void;
  goToCell(cell: ICellRef, link: HTMLElement): void;
  /** Whether the card's diff is unfolded, kept across redraws. */
  isOpen(card: ICard): boolean;
  setOpen(card: ICard, open: boolean): void;
}

/** The card's buttons for `actions` (Tune only where the kernel offers it), then its status line. */
export function buttons(
  card: ICard,
  actions: string[],
  pending: IPending | undefined,
  handlers: IHandlers
): HTMLElement[] {
  const out: HTMLElement[] = [];
  for (const action of actions) {
    if (!(action in card.actions) && action === 'tune') {
      continue; // only where there is a value to measure
    }
    const cls = `jp-Button jp-mod-styled${action === ACCEPT ? ' jp-mod-accept' : ''}`;
    const button = node('button', cls, null, LABELS[action]);
    button.dataset.action = action;
    button.disabled = !enabled(card, action, pending);
    button.addEventListener('click', () =>
      handlers.click(card, action, button)
    );
    out.push(button);
  }
  const now = status(card, pending);
  if (now.text) {
    const line = node('span', 'jpp-status', null, now.text);
    line.dataset.state = now.state;
    out.push(line);
  }
  return out;
}

export function cardNode(
  card: ICard,
  pending: IPending | undefined,
  handlers: IHandlers
): HTMLElement {
  const root = node('div', 'jpp-card', null);
  root.dataset.optimization = card.id;
  root.dataset.state = status(card, pending).state;
  const head = node('div', 'jpp-head', root);
  node('code', '', head, card.id);
  node('b', '', head, card.title);
  const gain = node(
    'span',
    card.estimated ? 'jpp-gain' : 'jpp-gain jpp-unknown',
    head,
    card.gain
  );
  gain.title = 'what the report expects this fix to gain';
  node('div', '', root, card.reason);
  if (card.description) {
    node('div', 'jpp-muted', root, card.description);
  }
  if (card.cells.length) {
    cellLinks(root, card.cells, handlers);
  }
  if (card.blocked) {
    node('div', 'jpp-muted', root, `Cannot apply: ${card.blocked}`);
  }
  if (card.diff) {
    const details = node('details', '', root);
    details.open = handlers.isOpen(card);
    details.addEventListener('toggle', () =>
      handlers.setOpen(card, details.open)
    );
    node('summary', '', details, 'Code change');
    const pre = node('pre', 'jpp-diff', details);
    for (const line of diffLines(card.diff)) {
      // the line break outside the tinted span: inside it, the next line's full-width tint would start on
      // the same line (white-space: pre never wraps) and be pushed out of view
      node('span', line.cls, pre, line.text);
      pre.append('\n');
    }
  }
  if (card.snippet) {
    const why = card.snippet_reason ? ` (${card.snippet_reason})` : '';
    node('div', '', root, `Code not rewritten${why}; add by hand:`);
    node('pre', '', root, card.snippet);
  }
  if (card.curve) {
    node('div', 'jpp-muted', root, `Measured: ${card.curve.how}`);
    root.append(curveTable(card.curve));
  }
  if (card.warnings.length) {
    const list = node('ul', 'jpp-warnings', root);
    for (const warning of card.warnings) {
      node('li', '', list, `⚠ ${warning}`);
    }
  }
  const row = node('div', 'jpp-buttons', root);
  row.append(...buttons(card, Object.keys(LABELS), pending, handlers));
  if (card.comparison) {
    // The kernel's own rendering (jupyter_perf/ui/comparison.py, escaped there): one before/after everywhere.
    node('div', 'jpp-comparison', root).innerHTML = card.comparison;
  }
  return root;
}

/** "Rewrites cell [2]": each cell a link that scrolls to it (with the JupyterLab extension). */
function cellLinks(parent: Element, cells: ICellRef[], handlers: IHandlers) {
  const line = node('div', 'jpp-muted jpp-cells', parent, 'Rewrites ');
  cells.forEach((cell, i) => {
    if (i) {
      line.append(', ');
    }
    if (!cell.cell_id) {
      line.append(cell.label);
      return;
    }
    const link = node('a', 'jpp-cell-link', line, cell.label);
    link.dataset.cellId = cell.cell_id;
    link.title = 'Show the cell';
    link.addEventListener('click', event => {
      event.preventDefault();
      handlers.goToCell(cell, link);
    });
  });
}

function curveTable(curve: ICurve): HTMLTableElement {
  const table = node('table', 'jpp-curve', null);
  table.title = curve.how;
  const head = node('tr', '', table);
  for (const name of [curve.param, 'samples/s', '', '']) {
    node('th', '', head, name);
  }
  for (const line of curveLines(curve)) {
    const tr = node('tr', line.chosen ? 'jpp-chosen' : '', table);
    node('td', '', tr, line.value);
    node('td', '', tr, line.rate);
    const bar = node('span', 'jpp-bar', node('td', 'jpp-bars', tr));
    bar.style.width = `${line.barPx}px`;
    node('td', 'jpp-note', tr, line.note);
  }
  return table;
}
