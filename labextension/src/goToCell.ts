/**
 * Taking the user to a cell: the optimization panel names the cells a change
 * rewrites (`cell [5]`) as links, and the runs list links each run to its
 * cell. A link raises `jupyter-perf-go-to-cell` (`detail`: `{cell_id}`); the
 * extension makes the cell active, scrolls it to the middle of the notebook
 * and flashes it. Without the extension nobody takes the event and the link
 * says so.
 */

import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';

import { flash } from './cellEdit';

export const GO_TO_CELL_EVENT = 'jupyter-perf-go-to-cell';

/** Activate the notebook, make cell `index` the active one, scroll it into the middle and flash it. */
export function showCell(
  panel: NotebookPanel,
  index: number,
  activate: (panel: NotebookPanel) => void
): void {
  activate(panel);
  panel.content.activeCellIndex = index;
  void panel.content
    .scrollToItem(index, 'center')
    .then(() => flash(panel.content.widgets[index]));
}

export function listenForCellLinks(
  tracker: INotebookTracker,
  activate: (panel: NotebookPanel) => void
): void {
  document.addEventListener(GO_TO_CELL_EVENT, event => {
    const cellId = (event as CustomEvent).detail?.cell_id;
    const inside = event.target as Node;
    const panel = tracker.find(p => p.node.contains(inside));
    const index =
      panel?.content.widgets.findIndex(c => c.model.id === cellId) ?? -1;
    if (!panel || index < 0) {
      return; // not a cell of a notebook here: the link says it cannot go there
    }
    event.preventDefault();
    showCell(panel, index, activate);
  });
}
