/**
 * What the kernel sends the optimization panel (jupyter_perf/ui/panel.py,
 * `OptimizationPanel._view`): one card per recommendation. Field names are
 * Python's. The view only draws these and reports clicks; every decision
 * (what a button does, whether it is on, which edits it carries) is the
 * kernel's.
 */

/** One cell edit a click makes at once where the JupyterLab extension takes it (docs/labextension.md). */
export interface IEdit {
  cell_id: string;
  expected_source_sha256: string;
  new_source: string;
}

export interface IAction {
  enabled: boolean;
  edits: IEdit[];
}

/** One measured value of a Tune click's curve. */
export interface ICurveRow {
  value: string | number;
  samples_per_s: number | null;
  chosen: boolean;
  current: boolean;
  note: string;
}

export interface ICurve {
  param: string;
  how: string;
  rows: ICurveRow[];
}

/** A cell the change rewrites, named as its prompt shows it (`cell [5]`). */
export interface ICellRef {
  cell_id: string | null;
  label: string;
}

export interface ICard {
  id: string;
  title: string;
  reason: string;
  /** The expected gain in words: `expected ×1.64`, or how to measure it. */
  gain: string;
  /** Whether the report estimated the gain (else `gain` says how to measure it). */
  estimated: boolean;
  description: string;
  diff: string;
  snippet: string | null;
  snippet_reason: string | null;
  curve: ICurve | null;
  warnings: string[];
  blocked: string | null;
  state: string;
  message: string;
  /** Clicks the kernel has carried out: a click is pending until this passes the count it was made at. */
  handled: number;
  /** The kernel is carrying out a click on this card now. */
  running: boolean;
  cells: ICellRef[];
  /** The before/after of the last re-run, as HTML (jupyter_perf/ui/comparison.py), or null. */
  comparison: string | null;
  actions: { [action: string]: IAction };
}

/** The record of the panel's state the JupyterLab extension keeps in the saved output. */
export interface IRecord {
  'text/html': string;
  'text/plain': string;
}

/** The part of anywidget's model this view uses (traits of OptimizationPanel). */
export interface IPanelModel {
  get(name: 'cards'): ICard[];
  get(name: 'token'): string;
  get(name: 'started'): string;
  get(name: 'record'): IRecord;
  on(event: string, callback: () => void): void;
  off(event: string, callback: () => void): void;
  send(content: object): void;
}
