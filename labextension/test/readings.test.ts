// What the live view shows of a sample (src/live/readings.ts): gauges, header texts, phase shares.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { IRow, IStatus, IStep } from '../src/live/model';
import {
  CPU_ROWS,
  cpuGauge,
  cpuTitle,
  elapsedText,
  emptyGauge,
  GPU_ROWS,
  gpuGauge,
  MEMORY_ROWS,
  memoryGauge,
  phaseGradient,
  phaseShares,
  phaseTransforms,
  rankText,
  stepText,
  throughputText
} from '../src/live/readings';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

const sample: IRow = {
  t: 12.34,
  cpu: 63.4,
  proc: 93.8,
  cores: [90, 37],
  rss: 1.5 * GiB,
  rssc: 300 * MiB,
  avail: 6 * GiB,
  gpus: [[45, 10 * GiB, 80 * GiB, 250.4, 61]],
  p: {}
};

const PHASES = [
  'data_wait',
  'host_to_device',
  'forward',
  'backward',
  'optimizer',
  'other'
];

test('each gauge has the rows its card was made for', () => {
  assert.deepEqual(
    cpuGauge(sample).rows.map(r => r.kind),
    CPU_ROWS
  );
  assert.deepEqual(
    memoryGauge(sample).rows.map(r => r.kind),
    MEMORY_ROWS
  );
  assert.deepEqual(
    gpuGauge([null, null, null, null, null]).rows.map(r => r.kind),
    GPU_ROWS
  );
});

test('gauges read in whole percents and binary units', () => {
  assert.deepEqual(cpuGauge(sample), {
    pct: 63.4,
    value: '63%',
    rows: [
      { kind: 'line', text: 'this kernel + workers 93.8%' },
      { kind: 'cores', pcts: [90, 37] }
    ]
  });
  const memory = memoryGauge(sample);
  assert.equal(memory.value, '1.79 GiB');
  assert.ok(
    Math.abs((memory.pct as number) - (100 * 1.79296875) / 7.79296875) < 1e-9
  );
  assert.deepEqual(memory.rows.slice(1), [
    { kind: 'line', text: 'kernel 1.50 GiB + workers 300 MiB' },
    { kind: 'line', text: 'of 7.79 GiB available' }
  ]);
  assert.deepEqual(gpuGauge([45, 10 * GiB, 80 * GiB, 250.4, 61]), {
    pct: 45,
    value: '45%',
    rows: [
      { kind: 'bar', pct: 12.5 },
      { kind: 'line', text: '10.0 GiB / 80.0 GiB' },
      { kind: 'line', text: '250 W · 61 °C' }
    ]
  });
});

test('a reading not taken shows a dash and an empty track, never 0', () => {
  const blank: IRow = {
    ...sample,
    cpu: null,
    proc: null,
    rss: null,
    rssc: null,
    avail: null
  };
  assert.equal(cpuGauge(blank).value, '—');
  assert.deepEqual(cpuGauge(blank).rows[0], { kind: 'line', text: '' });
  const memory = memoryGauge(blank);
  assert.equal(memory.pct, null);
  assert.deepEqual(
    memory.rows.map(r => (r.kind === 'line' ? r.text : r.kind)),
    ['bar', 'kernel — + workers —', 'of — available']
  );
  const gpu = gpuGauge([null, null, null, null, null]);
  assert.equal(gpu.value, '—');
  assert.deepEqual(gpu.rows, [
    { kind: 'bar', pct: null },
    { kind: 'line', text: '— / —' },
    { kind: 'line', text: '— W · — °C' }
  ]);
});

test('one CPU scale: the card says it, the kernel reads as a share of the same cores', () => {
  assert.equal(cpuTitle(2), 'CPU · % of 2 cores');
  assert.equal(cpuTitle(64), 'CPU · % of 64 cores');
});

test('a card before its first sample: the track and a dash, its rows empty', () => {
  for (const kinds of [CPU_ROWS, MEMORY_ROWS, GPU_ROWS]) {
    const gauge = emptyGauge(kinds);
    assert.equal(gauge.value, '—');
    assert.equal(gauge.pct, null);
    assert.deepEqual(
      gauge.rows.map(r => r.kind),
      kinds
    );
  }
});

test('the header: whole seconds since the start, then the steps and the rates there are', () => {
  assert.equal(elapsedText(0.3), ' · 0 s');
  assert.equal(elapsedText(12.34), ' · 12 s');
  assert.equal(elapsedText(12.5), ' · 13 s');
  assert.equal(elapsedText(59.6), ' · 1 min');
  assert.equal(elapsedText(125.2), ' · 2 min 5 s');
  const status: IStatus = {
    t: 3,
    steps: 1234,
    steps_per_s: 45.6,
    samples_per_s: 1459.2,
    tokens_per_s: 186777.6,
    step: null
  };
  assert.equal(
    throughputText(status),
    ' · 1,234 steps · 45.6 steps/s · 1.46k samples/s · 187k tokens/s'
  );
  assert.equal(
    throughputText({
      ...status,
      steps: 1,
      steps_per_s: null,
      samples_per_s: null,
      tokens_per_s: null
    }),
    ' · 1 step'
  );
  const step: IStep = { n: 1500, wall: 0.0042, phases: {} };
  assert.equal(stepText(step), 'step 1,500: 4.20 ms');
});

test("a rank's line and its phase bar", () => {
  assert.equal(
    rankText({
      label: 'rank 1',
      steps: 1234,
      step_s: 0.2,
      steps_per_s: 5,
      phases: {},
      cpu: 45.2,
      rss: 1.2 * GiB,
      gpu: null
    }),
    '1,234 steps · 5.00 steps/s · CPU 45% · 1.20 GiB'
  );
  const colors = { data_wait: '#e45756', forward: '#4c78a8', other: '#999' };
  assert.equal(
    phaseGradient({ data_wait: 0.25, forward: 0.75, other: null }, colors),
    'linear-gradient(to right, #e45756 0.0% 25.0%, #4c78a8 25.0% 100.0%)'
  );
  assert.equal(phaseGradient({}, colors), '');
});

test("the phase bar's segments follow each other, each scaled to its share", () => {
  const step: IStep = {
    n: 3,
    wall: 0.1,
    phases: { data_wait: 0.05, forward: 0.03, backward: 0.02, optimizer: null }
  };
  const shares = phaseShares(step, PHASES);
  assert.deepEqual(shares, {
    data_wait: 50,
    host_to_device: 0,
    forward: 30,
    backward: 20,
    optimizer: 0,
    other: 0
  });
  const transforms = phaseTransforms(shares, PHASES);
  assert.equal(transforms.data_wait, 'translateX(0.0%) scaleX(0.500)');
  assert.equal(transforms.forward, 'translateX(50.0%) scaleX(0.300)');
  assert.equal(transforms.backward, 'translateX(80.0%) scaleX(0.200)');
  assert.equal(transforms.other, 'translateX(100.0%) scaleX(0.000)');
  assert.deepEqual(
    Object.values(phaseShares({ n: 1, wall: 0, phases: {} }, PHASES)),
    [0, 0, 0, 0, 0, 0]
  );
});
