/**
 * The status-bar item's words for the kernel's counters (metrics.ts): its
 * text and its tooltip. Pure.
 */

import { size } from './units';

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
      text: `GPU ${util.toFixed(0)}% · ${size(mem)} / ${size(total)}`,
      title: m.gpus
        .map(
          g =>
            `GPU ${g.index} ${g.name}: ${g.util ?? '?'}% busy, ` +
            `this kernel ${size(g.proc_mem)}, device ${size(g.mem_used)} / ${size(g.mem_total)}`
        )
        .concat(cpuLine(m))
        .join('\n')
    };
  }
  return {
    text: `CPU ${m.cpu_percent.toFixed(0)}% · RAM ${size(m.rss)}`,
    title: [cpuLine(m), m.gpu_note ?? ''].join('\n').trim()
  };
}

function cpuLine(m: IMetrics): string {
  return (
    `kernel pid ${m.pid} and its children: CPU ${m.cpu_percent.toFixed(0)}% ` +
    `(100% = one of ${m.cpu_count} cores), RAM ${size(m.rss)} of ${size(m.mem_total)}`
  );
}
