/**
 * Rewriting one notebook cell, the same way whether the kernel asked (the
 * comm) or a panel button did (a DOM event).
 *
 * An edit applies only to the text it was computed from: the cell's current
 * source must hash to `expected_source_sha256`, otherwise nothing changes and
 * the user is told why. The rewrite goes through the cell's shared model as
 * one undo step of its own, so Ctrl+Z in the editor takes it back, and only
 * the span that differs is replaced, so the cursor and the rest of the text
 * stay put.
 */

import { Notification } from '@jupyterlab/apputils';
import { Cell } from '@jupyterlab/cells';
import { NotebookPanel } from '@jupyterlab/notebook';
import { JSONObject } from '@lumino/coreutils';

import { sha256Hex } from './sha256';
import { changedSpan } from './textSpan';

/** One cell edit, as the kernel and the panel send it (field names are the wire protocol's). */
export interface ICellEdit {
  cell_id: string;
  expected_source_sha256: string;
  new_source: string;
}

/** What became of one edit (field names are the wire protocol's). */
export interface IEditResult extends JSONObject {
  cell_id: string | null;
  ok: boolean;
  reason: string;
}

export interface IFoundCell {
  panel: NotebookPanel;
  cell: Cell;
}

/** Said when the cell no longer holds the text the edit was computed from (the kernel's wording, issue 5). */
export const CHANGED =
  'the cell changed since it was profiled — nothing was rewritten';

const FLASH_MS = 1600;

export function findCell(
  panels: NotebookPanel[],
  cellId: string
): IFoundCell | null {
  for (const panel of panels) {
    const cell = panel.content.widgets.find(c => c.model.id === cellId);
    if (cell) {
      return { panel, cell };
    }
  }
  return null;
}

export function isCellEdit(value: unknown): value is ICellEdit {
  const edit = value as ICellEdit;
  return (
    typeof edit === 'object' &&
    edit !== null &&
    typeof edit.cell_id === 'string' &&
    typeof edit.expected_source_sha256 === 'string' &&
    typeof edit.new_source === 'string'
  );
}

export class CellEditor {
  /** Whether to save the notebook after a rewrite (setting `saveAfterEdit`). */
  saveAfterEdit = true;

  /**
   * Apply `edit` to the cell found, or refuse; a refusal is shown to the user
   * as a notification unless `notify` is false (a panel click: its card says
   * why, naming the cell, once).
   */
  apply(found: IFoundCell | null, edit: ICellEdit, notify = true): IEditResult {
    const result = found
      ? this._rewrite(found, edit)
      : {
          cell_id: edit.cell_id,
          ok: false,
          reason: `no open notebook has a cell with id ${edit.cell_id} — nothing was rewritten`
        };
    if (!result.ok && notify) {
      Notification.warning(`jupyter-perf: ${result.reason}`, {
        autoClose: 10000
      });
    }
    return result;
  }

  private _rewrite({ panel, cell }: IFoundCell, edit: ICellEdit): IEditResult {
    const shared = cell.model.sharedModel;
    const current = shared.getSource();
    if (sha256Hex(current) !== edit.expected_source_sha256) {
      return { cell_id: edit.cell_id, ok: false, reason: CHANGED };
    }
    if (current !== edit.new_source) {
      const [start, end, text] = changedSpan(current, edit.new_source);
      // Its own undo step: not merged with keystrokes typed just before or after.
      const undo = (shared as IUndoable).undoManager;
      undo?.stopCapturing();
      shared.updateSource(start, end, text);
      undo?.stopCapturing();
      flash(cell);
      if (this.saveAfterEdit) {
        void panel.context.save();
      }
    }
    return { cell_id: edit.cell_id, ok: true, reason: '' };
  }
}

/** The cell's Yjs undo manager: public on @jupyter/ydoc's cells, absent from the ISharedCell interface. */
interface IUndoable {
  undoManager?: { stopCapturing(): void } | null;
}

/** Highlight `cell` briefly, so the eye finds it wherever it is. */
export function flash(cell: Cell): void {
  cell.node.classList.remove('jp-perf-edited');
  void cell.node.offsetWidth; // restart the animation when the same cell is rewritten twice in a row
  cell.node.classList.add('jp-perf-edited');
  window.setTimeout(
    () => cell.node.classList.remove('jp-perf-edited'),
    FLASH_MS
  );
}
