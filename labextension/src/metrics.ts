/**
 * The status-bar item: the current notebook kernel's GPU utilization and
 * memory, or its CPU and RAM where there is no GPU, refreshed every
 * `refreshInterval` ms from the server extension's endpoint
 * (`GET /jupyter-perf/metrics?kernel=<id>`, jupyter_perf/server/). The numbers
 * are the kernel's whole process tree, DataLoader workers included, because
 * the workers are part of what the notebook costs.
 */

import { URLExt } from '@jupyterlab/coreutils';
import { INotebookTracker } from '@jupyterlab/notebook';
import { ServerConnection } from '@jupyterlab/services';
import { Widget } from '@lumino/widgets';

import { describe, IMetrics } from './metricsText';

export async function fetchMetrics(kernelId: string): Promise<IMetrics> {
  const settings = ServerConnection.makeSettings();
  const url =
    URLExt.join(settings.baseUrl, 'jupyter-perf', 'metrics') +
    URLExt.objectToQueryString({ kernel: kernelId });
  const response = await ServerConnection.makeRequest(url, {}, settings);
  if (!response.ok) {
    throw new ServerConnection.ResponseError(response);
  }
  return (await response.json()) as IMetrics;
}

export class MetricsItem extends Widget {
  constructor(
    private readonly _tracker: INotebookTracker,
    onClick: () => void
  ) {
    super();
    this.addClass('jp-perf-status');
    this.node.addEventListener('click', onClick);
    this.hide();
  }

  /** Start, stop or retime polling (settings `statusBar`, `refreshInterval`). */
  configure(enabled: boolean, intervalMs: number): void {
    this._interval = intervalMs;
    window.clearTimeout(this._timer);
    const generation = ++this._generation; // a request still in flight ends its old loop
    if (enabled) {
      void this._tick(generation);
    } else {
      this.hide();
    }
  }

  private async _tick(generation: number): Promise<void> {
    const kernel = this._tracker.currentWidget?.sessionContext.session?.kernel;
    if (kernel && !document.hidden) {
      try {
        const { text, title } = describe(await fetchMetrics(kernel.id));
        this.node.textContent = text;
        this.node.title = `${title}\nClick for this notebook's profiled runs.`;
      } catch (error) {
        this.node.textContent = 'GPU/CPU ?';
        this.node.title = `jupyter-perf could not read the kernel's counters: ${error}`;
      }
    }
    if (generation !== this._generation) {
      return;
    }
    this.setHidden(!kernel);
    this._timer = window.setTimeout(
      () => void this._tick(generation),
      this._interval
    );
  }

  private _generation = 0;
  private _interval = 1000;
  private _timer = 0;
}
