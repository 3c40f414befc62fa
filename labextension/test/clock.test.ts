// The run's clock in the page (src/live/clock.ts): elapsed time from the page's clock, the start
// estimated from the pushes' own stamps, the reading changed at each half second of the run.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { RunClock } from '../src/live/clock';

test('elapsed time is unknown until a status arrives, then runs on the page clock', () => {
  const clock = new RunClock();
  assert.equal(clock.known, false);
  assert.equal(clock.elapsed(100), null);
  clock.observe(0.25, 100.5); // stamped 0.25 s into the run, arrived a quarter second later
  assert.equal(clock.elapsed(100.5), 0.25); // (the delay counts as a later start, for now)
  // a push that came quicker tells the start better; a slower one changes nothing
  clock.observe(1, 101);
  assert.equal(clock.elapsed(101), 1);
  clock.observe(2, 102.5);
  assert.equal(clock.elapsed(103), 3);
});

test('the whole-second reading changes at each half second of the run', () => {
  const clock = new RunClock();
  clock.observe(0, 10);
  assert.equal(clock.untilNextReading(10), 0.5);
  assert.equal(clock.untilNextReading(10.5), 1); // reads 1 s from here until 1.5 s
  assert.equal(clock.untilNextReading(11.25), 0.25);
  assert.equal(new RunClock().untilNextReading(0), Infinity);
});
