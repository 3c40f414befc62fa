/**
 * The verdict box at the top of the summary holds the top fix's Apply and
 * Apply & re-run: the panel's view draws them into the box's
 * `.jpp-verdict-actions` slot (jupyter_perf/ui/verdict.py), so they are the
 * panel's own live buttons. The summary is another output of the same cell,
 * so the slot is looked for from the view upwards, the nearest first, and
 * only in a box of the same run (`data-started`). Where the page puts each
 * output in a frame of its own (Colab) there is none to find: the box keeps
 * saying where the fixes are, and the cards below have the buttons.
 */

const SLOT = '.jpp-verdict-actions';

/** The slot of the verdict box of the run started at `started`, nearest to `el`; null where none. */
export function findSlot(
  el: HTMLElement,
  started: string,
  optimization: string
): HTMLElement | null {
  const box = started
    ? `.jp-perf-verdict[data-started="${CSS.escape(started)}"]`
    : '.jp-perf-verdict';
  const selector = `${box} ${SLOT}[data-optimization="${CSS.escape(optimization)}"]`;
  for (let up = el.parentElement; up; up = up.parentElement) {
    const found = up.querySelector<HTMLElement>(selector);
    if (found) {
      return found;
    }
  }
  return null;
}

/** A slot the view fills with live buttons, and gives back as it was when the view goes. */
export class VerdictSlot {
  constructor(readonly node: HTMLElement) {
    this._placeholder = [...node.childNodes];
    node.dataset.live = 'true';
  }

  fill(children: HTMLElement[]): void {
    this.node.replaceChildren(...children);
  }

  release(): void {
    this.node.replaceChildren(...this._placeholder);
    delete this.node.dataset.live;
  }

  private readonly _placeholder: ChildNode[];
}
