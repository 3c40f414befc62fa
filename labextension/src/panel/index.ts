/**
 * The jupyter-perf optimization panel: the anywidget view of
 * jupyter_perf/ui/panel.py (docs/optimizations.md, "The panel").
 *
 * Built into one self-contained ES module, `jupyter_perf/ui/static/panel.js`,
 * with `export default { render }` and no imports, so that anywidget renders
 * it wherever it runs (JupyterLab, Notebook 7, VS Code, Colab) without the
 * JupyterLab extension.
 *
 * A click raises a `jupyter-perf-action` DOM event carrying the card's edits
 * (docs/labextension.md): the JupyterLab extension takes it (the edits land
 * at once, the kernel's part runs when it is idle); where nobody does, the
 * view sends it on the widget's comm. The view also draws the top card's
 * buttons into the summary's verdict box (verdict.ts) and announces each new
 * record of the panel for the extension to keep in the saved output.
 */

import { cardNode, buttons, IHandlers, VERDICT_ACTIONS } from './card';
import { ICard, ICellRef, IPanelModel } from './model';
import { IPending } from './status';
import { findSlot, VerdictSlot } from './verdict';
import { node } from '../live/dom';

const ACTION_EVENT = 'jupyter-perf-action';
const RECORD_EVENT = 'jupyter-perf-record';
/** Asks the JupyterLab extension to scroll to a cell and flash it (`detail`: `{cell_id}`). */
const GO_TO_CELL_EVENT = 'jupyter-perf-go-to-cell';
/** Tries, 100 ms apart, for the view to be in the page (and the summary beside it). */
const TRIES = 50;

function render({
  model,
  el
}: {
  model: IPanelModel;
  el: HTMLElement;
}): () => void {
  const pending = new Map<string, IPending>();
  const open = new Set<string>();
  let slot: VerdictSlot | null = null;
  let disposed = false;

  const handlers: IHandlers = {
    click(card, action, button) {
      const detail = {
        action,
        optimization: card.id,
        token: model.get('token'),
        edits: card.actions[action]?.edits ?? []
      };
      const event = new CustomEvent(ACTION_EVENT, {
        bubbles: true,
        composed: true,
        cancelable: true,
        detail
      });
      if (button.dispatchEvent(event)) {
        model.send(detail); // not taken by the JupyterLab extension: the widget's comm
      }
      pending.set(card.id, { handled: card.handled, action });
      draw();
    },
    goToCell(cell: ICellRef, link: HTMLElement) {
      const event = new CustomEvent(GO_TO_CELL_EVENT, {
        bubbles: true,
        composed: true,
        cancelable: true,
        detail: { cell_id: cell.cell_id }
      });
      if (link.dispatchEvent(event)) {
        link.title = `Scroll to ${cell.label} yourself: going there needs the jupyter-perf JupyterLab extension`;
      }
    },
    isOpen: card => open.has(card.id),
    setOpen: (card, isOpen) =>
      isOpen ? open.add(card.id) : open.delete(card.id)
  };

  function draw(): void {
    const cards = model.get('cards');
    for (const card of cards) {
      const click = pending.get(card.id);
      if (click && card.handled > click.handled) {
        pending.delete(card.id);
      }
    }
    el.replaceChildren(
      node('h4', '', null, 'Optimizations'),
      ...cards.map(card => cardNode(card, pending.get(card.id), handlers))
    );
    drawVerdict(cards[0]);
  }

  /** The top card's buttons in the summary's verdict box, once the box is found. */
  function drawVerdict(top: ICard | undefined, tries = TRIES): void {
    if (disposed || !top) {
      return;
    }
    if (!slot || !slot.node.isConnected) {
      const found = findSlot(el, model.get('started'), top.id);
      if (!found) {
        if (tries > 0) {
          setTimeout(() => drawVerdict(model.get('cards')[0], tries - 1), 100);
        }
        return;
      }
      slot = new VerdictSlot(found);
    }
    slot.fill(buttons(top, VERDICT_ACTIONS, pending.get(top.id), handlers));
  }

  // The record of the panel's state, for the JupyterLab extension to keep in the saved output.
  function announce(tries = TRIES): void {
    if (disposed) {
      return;
    }
    const detail = model.get('record');
    if (el.isConnected) {
      el.dispatchEvent(
        new CustomEvent(RECORD_EVENT, { bubbles: true, composed: true, detail })
      );
    } else if (tries > 0) {
      setTimeout(() => announce(tries - 1), 100); // not in the page yet
    }
  }

  // (backbone passes the model to a listener: these take nothing)
  const onCards = () => draw();
  const onRecord = () => announce();
  el.classList.add('jp-perf-panel');
  model.on('change:cards', onCards);
  model.on('change:record', onRecord);
  draw();
  announce();
  return () => {
    disposed = true;
    model.off('change:cards', onCards);
    model.off('change:record', onRecord);
    slot?.release();
  };
}

export default { render };
