/**
 * The profiled runs of the current notebook, read from the summaries
 * `%%perfprofile` left in its cells' outputs (jupyter_perf/ui/summary.py), so
 * the list survives a kernel restart and needs no kernel at all. Each row
 * links to its cell.
 *
 * A summary's output carries the run in brief as JSON (reportPart.ts); that
 * is what is read. Notebooks saved before that part existed carry only the
 * summary's HTML: for those, its headline's `<span class="muted">wall
 * time</span> <b>…</b>` pairs and its `<h4>Bottleneck: …</h4>` heading are
 * read instead (that HTML is what those files hold, whatever the summary
 * looks like now).
 */

import { ICodeCellModel } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { listIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

import { showCell } from './goToCell';
import {
  GO_TO_CELL,
  IRunFields,
  readReportPart,
  REPORT_MIME,
  runFields
} from './reportPart';

export interface IRun extends IRunFields {
  /** Index of the cell in the notebook. */
  index: number;
  prompt: string;
}

const SUMMARY = 'jp-perf-summary';
const BOTTLENECK = 'Bottleneck:';

/**
 * The runs found in `panel`'s outputs, in notebook order. Read from the
 * cells' models, not their widgets: a long notebook renders only the cells in
 * view, and a reopened one may not have drawn any yet.
 */
export function profiledRuns(panel: NotebookPanel): IRun[] {
  const runs: IRun[] = [];
  const cells = panel.content.model?.cells;
  for (let index = 0; index < (cells?.length ?? 0); index++) {
    const cell = cells!.get(index);
    if (cell.type !== 'code') {
      continue;
    }
    const model = cell as ICodeCellModel;
    for (let i = 0; i < model.outputs.length; i++) {
      const data = model.outputs.get(i).data;
      const part = readReportPart(data[REPORT_MIME]);
      const fields = part ? runFields(part) : savedBefore(data['text/html']);
      if (fields) {
        const count = model.executionCount;
        runs.push({
          index,
          prompt: count ? `[${count}]` : `cell ${index + 1}`,
          ...fields
        });
      }
    }
  }
  return runs;
}

/** The run of a summary saved before the JSON part existed; null for any other output. */
function savedBefore(value: unknown): IRunFields | null {
  const html = Array.isArray(value) ? value.join('') : value;
  if (typeof html !== 'string' || !html.includes(SUMMARY)) {
    return null;
  }
  // parsed inert: no script of the output runs
  const summary = new DOMParser()
    .parseFromString(html, 'text/html')
    .querySelector(`.${SUMMARY}`);
  const heading = Array.from(summary?.querySelectorAll('h4') ?? []).find(h =>
    h.textContent?.startsWith(BOTTLENECK)
  );
  if (!summary || !heading) {
    return null; // a before/after comparison, not a run
  }
  const headline = new Map<string, string>();
  summary.querySelectorAll('span.muted').forEach(label => {
    const value = label.nextElementSibling;
    if (value?.tagName === 'B') {
      headline.set(label.textContent ?? '', value.textContent ?? '');
    }
  });
  const samples = headline.get('samples/s');
  const steps = headline.get('steps/s');
  return {
    time: headline.get('wall time') ?? '',
    bottleneck: heading.textContent?.replace(BOTTLENECK, '').trim() ?? '',
    throughput:
      samples && samples !== '—'
        ? `${samples} samples/s`
        : steps && steps !== '—'
          ? `${steps} steps/s`
          : '',
    state: '',
    title: GO_TO_CELL
  };
}

export class RunsPanel extends Widget {
  constructor(
    private readonly _tracker: INotebookTracker,
    private readonly _activate: (panel: NotebookPanel) => void
  ) {
    super();
    this.id = 'jupyter-perf-runs';
    this.addClass('jp-perf-runs');
    this.title.icon = listIcon;
    this.title.caption = 'jupyter-perf: profiled runs of this notebook';
    _tracker.currentChanged.connect(() => this.refresh());
  }

  /** Re-read the current notebook's runs (when shown, and after each cell ran). */
  refresh(): void {
    if (!this.isVisible) {
      return;
    }
    const panel = this._tracker.currentWidget;
    if (panel && !panel.context.isReady) {
      // a notebook being opened: its outputs are not loaded yet, so "no runs" would be wrong
      void panel.context.ready.then(() => this.refresh());
    }
    this.node.replaceChildren();
    const heading = document.createElement('h3');
    heading.textContent = panel
      ? `Profiled runs — ${panel.title.label}`
      : 'Profiled runs';
    this.node.append(heading);
    const runs = panel ? profiledRuns(panel) : [];
    if (!panel || !runs.length) {
      const note = document.createElement('p');
      note.textContent = panel
        ? 'No profiled run in this notebook yet: run a cell with %%perfprofile.'
        : 'Open a notebook to see its profiled runs.';
      this.node.append(note);
      return;
    }
    this.node.append(runsList(panel, runs, this._activate));
  }

  protected onAfterShow(): void {
    this.refresh();
  }
}

/** One item per run: the cell and the bottleneck, then time and throughput (fits a narrow sidebar). */
function runsList(
  panel: NotebookPanel,
  runs: IRun[],
  activate: (panel: NotebookPanel) => void
): HTMLUListElement {
  const list = document.createElement('ul');
  for (const run of runs) {
    const item = list.appendChild(document.createElement('li'));
    item.title = run.title;
    if (run.state) {
      item.classList.add('jp-perf-run-abnormal');
    }
    const span = (cls: string, text: string) => {
      if (!text) {
        return; // not measured: left out
      }
      const el = item.appendChild(document.createElement('span'));
      el.className = cls;
      el.textContent = text;
    };
    span('jp-perf-run-cell', run.prompt);
    span('jp-perf-run-bottleneck', run.bottleneck);
    item.appendChild(document.createElement('br'));
    span('jp-perf-run-time', run.time);
    span('jp-perf-run-throughput', run.throughput);
    span('jp-perf-run-state', run.state);
    item.addEventListener('click', () => showCell(panel, run.index, activate));
  }
  return list;
}
