/**
 * The browser side of the cell-edit channel (kernel side: jupyter_perf/frontend.py).
 *
 * Protocol, comm target `jupyter_perf`, version 1: the kernel opens the comm
 * with `{type: "hello", protocol: 1}` when `%load_ext jupyter_perf` runs; we
 * answer `{type: "ready"}`. Each `{type: "edit", request, cell_id,
 * expected_source_sha256, new_source}` is applied (cellEdit.ts) and answered
 * with `{type: "edit_result", request, ok, reason}`; a `{type: "notice",
 * text}` is shown to the user (the kernel took back a change whose edit was
 * refused). What each cell holds now is reported to the kernel
 * (sources.ts). A hello with another
 * protocol version is closed, which makes the kernel fall back to showing the
 * code.
 *
 * Comm targets are per kernel connection, so the target is registered on the
 * connection of every notebook. A page opened (or reloaded) after the kernel
 * said hello never saw the comm open: it asks the kernel for its open
 * `jupyter_perf` comms and takes them over, answering `ready` again, so the
 * kernel's edits keep arriving after a browser reload.
 */

import { Notification } from '@jupyterlab/apputils';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { JSONObject } from '@lumino/coreutils';

import { CellEditor, findCell, isCellEdit } from './cellEdit';
import { SourceReporter } from './sources';

export const TARGET = 'jupyter_perf';
export const PROTOCOL = 1;

export class EditChannel {
  constructor(
    private readonly _tracker: INotebookTracker,
    private readonly _editor: CellEditor
  ) {
    _tracker.widgetAdded.connect((_, panel) => this._watch(panel));
    _tracker.forEach(panel => this._watch(panel));
  }

  private _watch(panel: NotebookPanel): void {
    const attach = () => {
      const kernel = panel.sessionContext.session?.kernel;
      if (kernel) {
        this._attach(kernel);
      }
    };
    panel.sessionContext.kernelChanged.connect(attach);
    attach();
  }

  private _attach(kernel: Kernel.IKernelConnection): void {
    if (this._attached.has(kernel)) {
      return; // a connection keeps its targets across kernel restarts
    }
    this._attached.add(kernel);
    kernel.registerCommTarget(TARGET, (comm, msg) => {
      const protocol = (msg.content.data as JSONObject).protocol;
      if (protocol !== PROTOCOL) {
        console.warn(
          `jupyter-perf: the kernel speaks protocol ${protocol}, this extension ${PROTOCOL}; cells will not be edited`
        );
        comm.close();
        return;
      }
      this._listen(kernel, comm);
    });
    void this._adopt(kernel);
  }

  /** Take over the comms the kernel opened before this connection existed. */
  private async _adopt(kernel: Kernel.IKernelConnection): Promise<void> {
    let reply: KernelMessage.ICommInfoReplyMsg;
    try {
      reply = await kernel.requestCommInfo({ target_name: TARGET });
    } catch {
      return; // kernel gone or restarting: its comms are gone too
    }
    if (reply.content.status !== 'ok') {
      return;
    }
    for (const id of Object.keys(reply.content.comms)) {
      if (!kernel.hasComm(id)) {
        this._listen(kernel, kernel.createComm(TARGET, id));
      }
    }
  }

  private _listen(kernel: Kernel.IKernelConnection, comm: Kernel.IComm): void {
    comm.onMsg = msg => this._handle(kernel, comm, msg.content.data);
    comm.send({ type: 'ready' });
    this._sources.connect(kernel, comm);
  }

  private _handle(
    kernel: Kernel.IKernelConnection,
    comm: Kernel.IComm,
    data: JSONObject
  ): void {
    if (data.type === 'notice' && typeof data.text === 'string') {
      Notification.warning(data.text, { autoClose: 15000 });
      return;
    }
    if (data.type !== 'edit' || !isCellEdit(data)) {
      return;
    }
    const onKernel = (same: (k: Kernel.IKernelConnection) => boolean) =>
      this._tracker.filter(p => {
        const k = p.sessionContext.session?.kernel;
        return !!k && same(k);
      });
    const found = findCell(
      onKernel(k => k === kernel),
      data.cell_id
    );
    if (
      !found &&
      findCell(
        onKernel(k => k.id === kernel.id),
        data.cell_id
      )
    ) {
      return; // another notebook on this kernel holds the cell: its own connection answers
    }
    const result = this._editor.apply(found, data);
    comm.send({
      type: 'edit_result',
      request: data.request,
      ok: result.ok,
      reason: result.reason
    });
  }

  private readonly _attached = new WeakSet<Kernel.IKernelConnection>();
  private readonly _sources = new SourceReporter(this._tracker);
}
