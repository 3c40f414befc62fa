// The status-bar item's text and tooltip (src/metricsText.ts), in binary units.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { describe, IMetrics } from '../src/metricsText';

const GiB = 2 ** 30;
const MiB = 2 ** 20;

const cpuOnly: IMetrics = {
  kernel: 'k',
  pid: 42,
  cpu_percent: 12.4,
  cpu_count: 2,
  rss: 412 * MiB,
  mem_total: 7.75 * GiB,
  gpus: [],
  gpu_note: 'no NVIDIA GPU (NVML: driver not loaded)'
};

test('without a GPU: the CPU and the RAM of the kernel and its children', () => {
  assert.deepEqual(describe(cpuOnly), {
    text: 'CPU 12% · RAM 412 MiB',
    title:
      'kernel pid 42 and its children: CPU 12% (100% = one of 2 cores), RAM 412 MiB of 7.75 GiB\n' +
      'no NVIDIA GPU (NVML: driver not loaded)'
  });
});

test('with GPUs: the busiest one the kernel uses, and its memory there', () => {
  const gpu = (index: number, util: number, proc: number | null) => ({
    index,
    name: 'NVIDIA H200',
    util,
    mem_used: 20 * GiB,
    mem_total: 141 * GiB,
    proc_mem: proc
  });
  const { text, title } = describe({
    ...cpuOnly,
    gpus: [gpu(0, 80, 3.2 * GiB), gpu(1, 95, 0)],
    gpu_note: null
  });
  assert.equal(text, 'GPU 80% · 3.20 GiB / 141 GiB');
  assert.equal(
    title.split('\n')[1],
    'GPU 1 NVIDIA H200: 95% busy, this kernel 0 B, device 20.0 GiB / 141 GiB'
  );
  // NVML cannot attribute memory to processes: every GPU, by its device memory
  const unattributed = describe({
    ...cpuOnly,
    gpus: [gpu(0, 30, null), gpu(1, 60, null)],
    gpu_note: null
  });
  assert.equal(unattributed.text, 'GPU 60% · 40.0 GiB / 282 GiB');
});
