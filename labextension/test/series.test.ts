// A timeline panel's data (src/live/series.ts): rollover, gaps, markers, the y range and its ticks.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { IPanelSpec, IRow } from '../src/live/model';
import { niceTicks, Series } from '../src/live/series';

function panel(y: IPanelSpec['y'], unit = 'bytes'): IPanelSpec {
  return {
    title: 'host memory (RSS)',
    unit,
    y,
    time_axis: false,
    step_labels: true,
    series: [
      { column: 'rss', label: 'kernel', color: '#4c78a8' },
      { column: 'rssc', label: 'workers', color: '#f58518' }
    ]
  };
}

function row(t: number, p: IRow['p'], marks?: [number, number][]): IRow {
  return {
    t,
    cpu: null,
    proc: null,
    cores: [],
    rss: null,
    rssc: null,
    avail: null,
    gpus: [],
    p,
    marks
  };
}

test('each line keeps its last points; a value not sampled is a gap (NaN)', () => {
  const data = new Series(panel({ min: 0, padding: 0.15 }), 3, 2);
  data.push([
    row(0, { rss: 1, rssc: null }, [[0, 1]]),
    row(1, { rss: 2 }, [[1, 10]])
  ]);
  data.push([
    row(2, { rss: 3, rssc: 0.5 }),
    row(3, { rss: 4, rssc: 0.25 }, [[3, 100]])
  ]);
  assert.deepEqual(data.t, [1, 2, 3]);
  assert.deepEqual(data.columns[0], [2, 3, 4]);
  assert.deepEqual(data.columns[1], [NaN, 0.5, 0.25]);
  assert.deepEqual(data.marks, [
    [1, 10],
    [3, 100]
  ]);
});

test('the y axis is fixed, or follows the data from its minimum with headroom up to a labelled tick', () => {
  const fixed = new Series(panel({ min: 0, max: 100 }, '%'), 10, 10).axis();
  assert.deepEqual(
    [fixed.lo, fixed.hi, fixed.unit, fixed.labels],
    [0, 100, '%', ['0', '50', '100']]
  );
  const auto = new Series(panel({ min: 0, padding: 0.5 }, '%'), 10, 10);
  assert.deepEqual([auto.axis().lo, auto.axis().hi], [0, 1]); // nothing yet: a unit axis
  auto.push([row(0, { rss: 2, rssc: null }), row(1, { rss: 1, rssc: 4 })]);
  const axis = auto.axis();
  assert.deepEqual([axis.hi, axis.labels], [6, ['0', '2', '4', '6']]);
});

test('sizes are drawn in the binary unit the top calls for, the top a tick', () => {
  const memory = new Series(panel({ min: 0, padding: 0.1 }, 'bytes'), 10, 10);
  memory.push([row(0, { rss: 300 * 2 ** 20, rssc: 0 })]);
  const axis = memory.axis();
  assert.equal(axis.unit, 'MiB'); // not 0.0–0.4 GiB
  assert.equal(axis.scale, 2 ** 20);
  assert.deepEqual([axis.hi, axis.labels], [400, ['0', '200', '400']]);
  memory.push([row(1, { rss: 1.5 * 2 ** 30, rssc: 0 })]);
  assert.deepEqual([memory.axis().unit, memory.axis().hi], ['GiB', 2]);
  // a fixed top (a GPU's capacity) is labelled as it is; a round tick too close to it gives way
  const gpu = (gib: number) =>
    new Series(panel({ min: 0, max: gib * 2 ** 30 }, 'bytes'), 10, 10).axis();
  assert.deepEqual([gpu(80).unit, gpu(80).labels], ['GiB', ['0', '50', '80']]);
  assert.deepEqual(gpu(141).labels, ['0', '50', '100', '141']);
  assert.deepEqual(gpu(94.5).labels, ['0', '50', '94.5']);
});

test('ticks fall on 1, 2 or 5 times a power of ten, with the decimals they need', () => {
  // as drawn: each tick with the decimals its step needs
  const labels = (lo: number, hi: number, count: number) => {
    const { ticks, digits } = niceTicks(lo, hi, count);
    return ticks.map(v => v.toFixed(digits));
  };
  assert.deepEqual(labels(0, 105, 3), ['0', '50', '100']);
  assert.deepEqual(labels(0, 1, 3), ['0.0', '0.5', '1.0']);
  assert.deepEqual(labels(0, 0.07, 3), ['0.00', '0.05']);
  assert.deepEqual(labels(0, 0.07, 4), ['0.00', '0.02', '0.04', '0.06']);
  assert.deepEqual(labels(12.3, 19.9, 4), ['14', '16', '18']);
  assert.deepEqual(labels(3, 3, 3), ['3']);
});
