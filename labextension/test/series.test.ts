// A timeline panel's data (src/live/series.ts): rollover, gaps, markers, the y range and its ticks.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { IPanelSpec, IRow } from '../src/live/model';
import { niceTicks, Series } from '../src/live/series';

function panel(y: IPanelSpec['y']): IPanelSpec {
  return {
    title: 'host RSS',
    unit: 'GiB',
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

test('the y axis is fixed, or follows the data from its minimum with headroom', () => {
  assert.deepEqual(
    new Series(panel({ min: 0, max: 105 }), 10, 10).yRange(),
    [0, 105]
  );
  const auto = new Series(panel({ min: 0, padding: 0.5 }), 10, 10);
  assert.deepEqual(auto.yRange(), [0, 1]); // nothing yet: a unit axis
  auto.push([row(0, { rss: 2, rssc: null }), row(1, { rss: 1, rssc: 4 })]);
  assert.deepEqual(auto.yRange(), [0, 6]);
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
