// The optimization panel's pure parts (src/panel/): diff lines, the Tune curve, and where a card stands
// after a click (queued only while the kernel has not started on it).
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { curveLines } from '../src/panel/curve';
import { diffLines } from '../src/panel/diff';
import { ICard } from '../src/panel/model';
import { enabled, phase, QUEUED, status } from '../src/panel/status';

const card: ICard = {
  id: 'dataloader.workers',
  title: 'Load batches in worker processes',
  reason: 'Data wait is 30% of each step',
  gain: 'expected ×1.18',
  estimated: true,
  description: '',
  diff: '',
  snippet: null,
  snippet_reason: null,
  curve: null,
  warnings: [],
  blocked: null,
  state: 'ready',
  message: '',
  handled: 2,
  running: false,
  cells: [],
  comparison: null,
  actions: {
    apply: { enabled: true, edits: [] },
    'apply-rerun': { enabled: true, edits: [] },
    undo: { enabled: false, edits: [] }
  }
};

test('diff lines are coloured by what they do, headers and context left plain', () => {
  const lines = diffLines(
    '--- a/cell [2]\n+++ b/cell [2]\n@@ -1 +1 @@\n-x = 1\n+x = 2\n y\n'
  );
  assert.deepEqual(
    lines.map(l => l.cls),
    ['', '', 'jpp-hunk', 'jpp-del', 'jpp-add', '']
  );
  assert.equal(lines[3].text, '-x = 1');
  assert.deepEqual(diffLines(''), []);
});

test('the curve scales bars to the fastest value and marks the chosen and current ones', () => {
  const lines = curveLines({
    param: 'num_workers',
    how: 'the loop',
    rows: [
      { value: 0, samples_per_s: 50, chosen: false, current: true, note: '' },
      {
        value: 2,
        samples_per_s: 1500,
        chosen: true,
        current: false,
        note: '3 runs, 4% apart'
      },
      {
        value: 4,
        samples_per_s: null,
        chosen: false,
        current: false,
        note: 'failed'
      }
    ]
  });
  assert.deepEqual(
    lines.map(l => [l.value, l.rate, l.barPx, l.note]),
    [
      ['0', '50.0', 4, '(current)'],
      ['2', '1.50k', 120, '← chosen · 3 runs, 4% apart'],
      ['4', '—', 0, 'failed']
    ]
  );
});

test('a click is queued until the kernel starts on it, running while it does, then the kernel has its say', () => {
  const clicked = { handled: 2, action: 'apply-rerun' };
  assert.equal(phase(card, undefined), 'idle');
  assert.equal(phase(card, clicked), 'queued');
  assert.deepEqual(status(card, clicked), { state: 'queued', text: QUEUED });
  const running = { ...card, running: true };
  assert.equal(phase(running, clicked), 'running');
  assert.match(
    status(running, clicked).text,
    /^running: applying, then profiling/
  );
  const done = {
    ...card,
    handled: 3,
    state: 'remeasured',
    message: 're-measured: samples/s ×1.44, better'
  };
  assert.deepEqual(status(done, clicked), {
    state: 'remeasured',
    text: 're-measured: samples/s ×1.44, better'
  });
});

test('buttons are off while a click is pending and where the kernel says so', () => {
  assert.equal(enabled(card, 'apply', undefined), true);
  assert.equal(enabled(card, 'undo', undefined), false);
  assert.equal(enabled(card, 'tune', undefined), false);
  assert.equal(enabled(card, 'apply', { handled: 2, action: 'apply' }), false);
  assert.equal(enabled(card, 'apply', { handled: 1, action: 'apply' }), true);
});
