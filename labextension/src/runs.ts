/**
 * The profiled runs of the current notebook, read from the summaries
 * `%%perfprofile` left in its cells' outputs (jupyter_perf/ui/summary.py), so
 * the list survives a kernel restart and needs no kernel at all. Each row
 * links to its cell.
 *
 * A summary's headline holds `<span class="muted">wall time</span> <b>…</b>`
 * pairs and a `<h4>Bottleneck: …</h4>` heading; those are what is read.
 */

import { ICodeCellModel } from '@jupyterlab/cells';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { listIcon } from '@jupyterlab/ui-components';
import { Widget } from '@lumino/widgets';

export interface IRun {
  /** Index of the cell in the notebook. */
  index: number;
  prompt: string;
  time: string;
  bottleneck: string;
  throughput: string;
}

const SUMMARY = 'jp-perf-summary';

/** The runs found in `panel`'s outputs, in notebook order. */
export function profiledRuns(panel: NotebookPanel): IRun[] {
  const runs: IRun[] = [];
  const parser = new DOMParser(); // parses inert: no script of the output runs
  panel.content.widgets.forEach((cell, index) => {
    if (cell.model.type !== 'code') {
      return;
    }
    const model = cell.model as ICodeCellModel;
    for (let i = 0; i < model.outputs.length; i++) {
      const value = model.outputs.get(i).data['text/html'];
      const html = Array.isArray(value) ? value.join('') : value;
      if (typeof html !== 'string' || !html.includes(SUMMARY)) {
        continue;
      }
      const summary = parser
        .parseFromString(html, 'text/html')
        .querySelector(`.${SUMMARY}`);
      if (summary) {
        const count = model.executionCount;
        runs.push({
          index,
          prompt: count ? `[${count}]` : `cell ${index + 1}`,
          ...readSummary(summary)
        });
      }
    }
  });
  return runs;
}

function readSummary(
  summary: Element
): Pick<IRun, 'time' | 'bottleneck' | 'throughput'> {
  const headline = new Map<string, string>();
  summary.querySelectorAll('span.muted').forEach(label => {
    const value = label.nextElementSibling;
    if (value?.tagName === 'B') {
      headline.set(label.textContent ?? '', value.textContent ?? '');
    }
  });
  const heading = Array.from(summary.querySelectorAll('h4')).find(h =>
    h.textContent?.startsWith('Bottleneck:')
  );
  const samples = headline.get('samples/s');
  const steps = headline.get('steps/s');
  return {
    time: headline.get('wall time') ?? '?',
    bottleneck: heading?.textContent?.replace('Bottleneck:', '').trim() ?? '?',
    throughput:
      samples && samples !== '—'
        ? `${samples} samples/s`
        : steps
          ? `${steps} steps/s`
          : '?'
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
    item.title = 'Go to the cell';
    const span = (cls: string, text: string) => {
      const el = item.appendChild(document.createElement('span'));
      el.className = cls;
      el.textContent = text;
    };
    span('jp-perf-run-cell', run.prompt);
    span('jp-perf-run-bottleneck', run.bottleneck);
    item.appendChild(document.createElement('br'));
    span('jp-perf-run-time', run.time);
    span('jp-perf-run-throughput', run.throughput);
    item.addEventListener('click', () => {
      activate(panel);
      panel.content.activeCellIndex = run.index;
      void panel.content.scrollToItem(run.index, 'center');
    });
  }
  return list;
}
