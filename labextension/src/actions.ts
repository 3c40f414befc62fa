/**
 * Clicks on the optimization panel that work while a cell runs.
 *
 * A widget's comm message reaches the kernel only after the running cell
 * ends, so the panel's buttons raise a DOM event instead (contract in
 * docs/labextension.md):
 *
 *     button.dispatchEvent(new CustomEvent('jupyter-perf-action', {
 *       bubbles: true, composed: true, cancelable: true,
 *       detail: {action, optimization, edits: [{cell_id, expected_source_sha256, new_source}], ...}
 *     }))
 *
 * The extension takes it at once: it calls `preventDefault()` (so
 * `dispatchEvent` returns false and the panel knows it was handled), applies
 * `edits` to the notebook now, under the same hash rule as the kernel's
 * edits, and queues the kernel-side work, `jupyter_perf.panel_action(detail)`
 * with `edit_results` and `source_cell_id` added, to run when the kernel is
 * next idle. Meanwhile the element that raised the event carries
 * `data-jpp-state`: `queued`, `running`, then `done` or `error`. What the call
 * prints or displays, and its traceback, are appended to the outputs of the
 * cell holding the button. A refused edit is not announced here: the panel's
 * card says why, naming the cell, once.
 */

import { CodeCell } from '@jupyterlab/cells';
import * as nbformat from '@jupyterlab/nbformat';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel } from '@jupyterlab/services';
import { JSONObject } from '@lumino/coreutils';

import { CellEditor, findCell, isCellEdit } from './cellEdit';

export const ACTION_EVENT = 'jupyter-perf-action';

/** Messages of the call that become outputs of the button's cell, appended after what is there. */
const OUTPUT_TYPES = new Set([
  'stream',
  'display_data',
  'execute_result',
  'error'
]);

type State = 'queued' | 'running' | 'done' | 'error';

interface IJob {
  payload: JSONObject;
  /** The element that raised the event: it shows the job's state. */
  source: HTMLElement;
  /** The code cell whose outputs receive what the call prints. */
  cell: CodeCell | null;
}

export class PanelActions {
  constructor(
    private readonly _tracker: INotebookTracker,
    private readonly _editor: CellEditor
  ) {
    document.addEventListener(ACTION_EVENT, this._onAction);
  }

  private readonly _onAction = (event: Event): void => {
    const detail = (event as CustomEvent).detail as JSONObject | null;
    const inside = event.target as Node;
    const panel = this._tracker.find(p => p.node.contains(inside));
    if (!panel || typeof detail !== 'object' || detail === null) {
      return; // not from a notebook this extension manages: leave it to whoever else listens
    }
    event.preventDefault();
    const source = event.composedPath()[0] as HTMLElement;
    const edits = Array.isArray(detail.edits) ? detail.edits : [];
    const results = edits.map(edit =>
      isCellEdit(edit)
        ? this._editor.apply(findCell([panel], edit.cell_id), edit, false)
        : { cell_id: null, ok: false, reason: 'malformed edit' }
    );
    const cell = panel.content.widgets.find(c => c.node.contains(inside));
    const job: IJob = {
      payload: {
        ...detail,
        edit_results: results,
        source_cell_id: cell ? cell.model.id : null
      },
      source,
      cell: cell instanceof CodeCell ? cell : null
    };
    this._queueFor(panel).push(job);
  };

  private _queueFor(panel: NotebookPanel): KernelQueue {
    let queue = this._queues.get(panel);
    if (!queue) {
      queue = new KernelQueue(panel);
      this._queues.set(panel, queue);
    }
    return queue;
  }

  private readonly _queues = new WeakMap<NotebookPanel, KernelQueue>();
}

/** Jobs for one notebook's kernel, run one at a time, each when the kernel is idle. */
class KernelQueue {
  constructor(private readonly _panel: NotebookPanel) {
    _panel.sessionContext.statusChanged.connect(() => void this._pump());
  }

  push(job: IJob): void {
    this._jobs.push(job);
    mark(job, 'queued');
    void this._pump();
  }

  private async _pump(): Promise<void> {
    const kernel = this._panel.sessionContext.session?.kernel;
    if (this._busy || !kernel || kernel.status !== 'idle') {
      return;
    }
    const job = this._jobs.shift();
    if (!job) {
      return;
    }
    this._busy = true;
    mark(job, 'running');
    try {
      const reply = await run(kernel, job);
      mark(job, reply.content.status === 'ok' ? 'done' : 'error');
    } catch {
      mark(job, 'error'); // the kernel died or restarted under the call
    } finally {
      this._busy = false;
      void this._pump();
    }
  }

  private readonly _jobs: IJob[] = [];
  private _busy = false;
}

/**
 * Run `jupyter_perf.panel_action(payload)` silently: no execution count, no
 * history, and no pre/post_run_cell events, so the kernel's record of which
 * cell ran last (cells.py) is untouched.
 */
function run(kernel: Kernel.IKernelConnection, job: IJob) {
  const literal = JSON.stringify(JSON.stringify(job.payload)); // a JSON string literal is a Python one too
  const future = kernel.requestExecute({
    code: `__import__("jupyter_perf").panel_action(__import__("json").loads(${literal}))`,
    silent: true,
    store_history: false,
    stop_on_error: false,
    allow_stdin: false
  });
  const outputs = job.cell?.model.outputs;
  future.onIOPub = msg => {
    const type = msg.header.msg_type;
    if (outputs && !outputs.isDisposed && OUTPUT_TYPES.has(type)) {
      outputs.add({ ...msg.content, output_type: type } as nbformat.IOutput);
    }
  };
  return future.done;
}

function mark(job: IJob, state: State): void {
  job.source.dataset.jppState = state;
}
