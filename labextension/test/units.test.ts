// The browser's units read as the kernel's: the cases of tests/test_units.py (jupyter_perf/units.py),
// plus what only the browser formats.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import {
  count,
  duration,
  number,
  rate,
  ratio,
  significant,
  size
} from '../src/units';

const MiB = 2 ** 20;
const GiB = 2 ** 30;

test('sizes are binary with three significant digits', () => {
  const cases: [number, string][] = [
    [0, '0 B'],
    [512, '512 B'],
    [1024, '1.00 KiB'],
    [6 * MiB, '6.00 MiB'],
    [1.9 * GiB, '1.90 GiB'],
    [150 * MiB, '150 MiB'],
    [GiB * 1023.99, '1.00 TiB'],
    [-65536, '−64.0 KiB'],
    [1023.6, '1.00 KiB'],
    [GiB, '1.00 GiB'],
    [141 * GiB, '141 GiB']
  ];
  for (const [bytes, text] of cases) {
    assert.equal(size(bytes), text, `${bytes} bytes`);
  }
});

test('a value not observed reads as a dash, never as 0', () => {
  for (const f of [size, duration, count, ratio]) {
    assert.equal(f(null), '—');
    assert.equal(f(undefined), '—');
    assert.equal(f(NaN), '—');
  }
  assert.equal(rate(null, 'steps'), '—');
});

test('durations', () => {
  const cases: [number, string][] = [
    [3e-6, '3.00 µs'],
    [850e-6, '850 µs'],
    [4.2e-3, '4.20 ms'],
    [1.25, '1.25 s'],
    [125, '2 min 5 s'],
    [120, '2 min'],
    [3725, '1 h 2 min'],
    [7200, '2 h'],
    [0, '0 s'],
    [-1.5, '−1.50 s']
  ];
  for (const [seconds, text] of cases) {
    assert.equal(duration(seconds), text, `${seconds} s`);
  }
});

test('rates, ratios and counts', () => {
  assert.equal(rate(1234, 'samples'), '1.23k samples/s');
  assert.equal(rate(45.6, 'steps'), '45.6 steps/s');
  assert.equal(rate(2.5e6, 'tokens'), '2.50M tokens/s');
  assert.equal(number(68.6), '68.6');
  assert.equal(number(1234), '1.23k');
  assert.equal(number(null), '—');
  assert.deepEqual([1.456, 0.71, 12.3].map(ratio), ['×1.46', '×0.71', '×12']);
  assert.equal(count(1234567), '1,234,567');
  assert.equal(count(2.5), '2.50');
});

test('three significant digits below 100, whole numbers with separators above', () => {
  assert.deepEqual([0.0123, 4.56, 78.9, 99.4, 123.4, 1234].map(significant), [
    '0.0123',
    '4.56',
    '78.9',
    '99.4',
    '123',
    '1,234'
  ]);
});
