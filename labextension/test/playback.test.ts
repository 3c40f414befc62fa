// The live view's clock (src/live/playback.ts): rows are shown at their own sampling cadence, a
// fixed delay behind, once each; a view left far behind catches up at once.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { IFrame, IRow } from '../src/live/model';
import { MAX_BEHIND, Playback } from '../src/live/playback';

// Times in quarter seconds: exact in binary, so 'due at' means exactly then.
const DELAY = 0.5;

function row(t: number): IRow {
  return {
    t,
    cpu: 50,
    proc: 100,
    cores: [],
    rss: 1,
    rssc: 0,
    avail: 1,
    gpus: [],
    p: {}
  };
}

function frame(seq: number, times: number[]): IFrame {
  return { seq, rows: times.map(row) };
}

const times = (rows: IRow[]) => rows.map(r => r.t);

test('each row is due at its sampling time plus the smallest lag seen plus the delay', () => {
  const playback = new Playback(DELAY);
  // rows sampled at 0.25 .. 1.25 s arrive at 11.25 s: the lag is 10 s
  playback.receive(frame(1, [0.25, 0.5, 0.75, 1, 1.25]), 11.25);
  assert.deepEqual(times(playback.due(10.5)), []);
  assert.deepEqual(times(playback.due(10.75)), [0.25]);
  assert.deepEqual(times(playback.due(11.25)), [0.5, 0.75]);
  assert.deepEqual(times(playback.due(11.25)), []);
  assert.deepEqual(times(playback.due(12)), [1, 1.25]);
  assert.deepEqual(playback.due(20), []);
});

test('a frame seen before, or without rows, changes nothing', () => {
  const playback = new Playback(DELAY);
  playback.receive(frame(1, [0.25]), 1);
  playback.receive(frame(1, [0.25]), 1); // the same frame again (a second change event)
  playback.receive(frame(2, []), 1);
  playback.receive(null, 1);
  assert.deepEqual(times(playback.due(5)), [0.25]);
});

test('a later frame that arrives sooner after its sampling shortens the delay', () => {
  const playback = new Playback(DELAY);
  playback.receive(frame(1, [0.5]), 1); // lag 0.5
  playback.receive(frame(2, [1]), 1.25); // lag 0.25: the best so far
  assert.deepEqual(times(playback.due(1.25)), [0.5]); // 0.5 + 0.25 + DELAY
  assert.deepEqual(times(playback.due(1.5)), []);
  assert.deepEqual(times(playback.due(1.75)), [1]);
});

test('a view more than MAX_BEHIND late shows everything queued at once', () => {
  const playback = new Playback(DELAY);
  playback.receive(frame(1, [0.25, 0.5]), 0.75);
  playback.receive(frame(2, [0.75, 1]), 1.25);
  // a hidden tab: nothing was shown for seconds; the first row was due at 1
  const late = 1 + MAX_BEHIND + 7.5;
  assert.deepEqual(times(playback.due(late)), [0.25, 0.5, 0.75, 1]);
  // from then on rows are due at the new lag: the newest row was shown just now
  playback.receive(frame(3, [1.25]), late + 0.5);
  assert.deepEqual(times(playback.due(late)), []);
  assert.deepEqual(times(playback.due(late + 0.25)), [1.25]);
});
