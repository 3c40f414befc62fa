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

/** One GPU as the endpoint reports it; null where NVML cannot tell. */
export interface IGpu {
  index: number;
  name: string;
  util: number | null;
  mem_used: number | null;
  mem_total: number | null;
  proc_mem: number | null;
}

/** The endpoint's answer (jupyter_perf/server/metrics.py). */
export interface IMetrics {
  kernel: string;
  pid: number;
  cpu_percent: number;
  cpu_count: number;
  rss: number;
  mem_total: number;
  gpus: IGpu[];
  gpu_note: string | null;
}

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

function gib(bytes: number | null): string {
  return bytes === null ? '?' : (bytes / 2 ** 30).toFixed(1);
}

/** The item's text and its tooltip. */
export function describe(m: IMetrics): { text: string; title: string } {
  // GPUs the kernel holds memory on; all of them when NVML cannot attribute memory to processes.
  const used = m.gpus.filter(g => (g.proc_mem ?? 0) > 0);
  const shown = used.length ? used : m.gpus;
  if (shown.length) {
    const util = Math.max(...shown.map(g => g.util ?? 0));
    const mem = shown.reduce((s, g) => s + (g.proc_mem ?? g.mem_used ?? 0), 0);
    const total = shown.reduce((s, g) => s + (g.mem_total ?? 0), 0);
    return {
      text: `GPU ${util.toFixed(0)}% · ${gib(mem)}/${gib(total)} GiB`,
      title: m.gpus
        .map(
          g =>
            `GPU ${g.index} ${g.name}: ${g.util ?? '?'}% busy, ` +
            `this kernel ${gib(g.proc_mem)} GiB, device ${gib(g.mem_used)}/${gib(g.mem_total)} GiB`
        )
        .concat(cpuLine(m))
        .join('\n')
    };
  }
  return {
    text: `CPU ${m.cpu_percent.toFixed(0)}% · RAM ${gib(m.rss)} GiB`,
    title: [cpuLine(m), m.gpu_note ?? ''].join('\n').trim()
  };
}

function cpuLine(m: IMetrics): string {
  return (
    `kernel pid ${m.pid} and its children: CPU ${m.cpu_percent.toFixed(0)}% ` +
    `(100% = one of ${m.cpu_count} cores), RAM ${gib(m.rss)} of ${gib(m.mem_total)} GiB`
  );
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
