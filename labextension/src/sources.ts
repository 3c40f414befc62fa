/**
 * Tells the kernel what each cell of a notebook holds now.
 *
 * The kernel knows a cell only as it last ran (jupyter_perf/cells.py), and
 * would compute a rewrite from that text even after the user edited the cell
 * without running it. So, over each kernel's `jupyter_perf` comm, this sends
 * `{type: "sources", cells: {cell_id: sha256}}` with the cells whose text
 * changed since the last report: shortly after typing stops, and at once when
 * a cell is scheduled to run, so the report reaches the kernel before the
 * code that may ask for a rewrite (frontend.py refuses one computed from
 * text the notebook no longer holds).
 */

import {
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { Kernel } from '@jupyterlab/services';

import { sha256Hex } from './sha256';

/** Quiet time after the last keystroke before a report, ms. */
const DELAY_MS = 300;

interface IReceiver {
  comm: Kernel.IComm;
  /** The hash last sent for each cell id. */
  sent: Map<string, string>;
}

export class SourceReporter {
  constructor(private readonly _tracker: INotebookTracker) {
    _tracker.widgetAdded.connect((_, panel) => this._watch(panel));
    _tracker.forEach(panel => this._watch(panel));
    NotebookActions.executionScheduled.connect((_, { notebook }) => {
      const panel = _tracker.find(p => p.content === notebook);
      if (panel) {
        this._report(panel);
      }
    });
  }

  /** Report to `comm` for the notebooks on `kernel` from now on, every cell once first. */
  connect(kernel: Kernel.IKernelConnection, comm: Kernel.IComm): void {
    this._receivers.set(kernel, { comm, sent: new Map() });
    this._tracker.forEach(panel => {
      if (panel.sessionContext.session?.kernel === kernel) {
        this._report(panel);
      }
    });
  }

  private _watch(panel: NotebookPanel): void {
    panel.context.model.contentChanged.connect(() => {
      window.clearTimeout(this._timers.get(panel));
      this._timers.set(
        panel,
        window.setTimeout(() => this._report(panel), DELAY_MS)
      );
    });
  }

  private _report(panel: NotebookPanel): void {
    window.clearTimeout(this._timers.get(panel));
    const kernel = panel.sessionContext.session?.kernel;
    const receiver = kernel ? this._receivers.get(kernel) : undefined;
    if (!receiver || receiver.comm.isDisposed) {
      return;
    }
    const cells: { [id: string]: string } = {};
    for (const cell of panel.content.widgets) {
      const hash = sha256Hex(cell.model.sharedModel.getSource());
      if (receiver.sent.get(cell.model.id) !== hash) {
        cells[cell.model.id] = hash;
      }
    }
    if (Object.keys(cells).length) {
      receiver.comm.send({ type: 'sources', cells });
      Object.entries(cells).forEach(([id, hash]) =>
        receiver.sent.set(id, hash)
      );
    }
  }

  private readonly _receivers = new WeakMap<
    Kernel.IKernelConnection,
    IReceiver
  >();
  private readonly _timers = new WeakMap<NotebookPanel, number>();
}
