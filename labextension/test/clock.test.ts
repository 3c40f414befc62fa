// The run's clock in the page (src/live/clock.ts): elapsed time from the page's clock, the start
// estimated from the pushes' own stamps, the reading changed at each half second of the run.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { READING_MARGIN, RunClock } from '../src/live/clock';

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

test('the whole-second reading changes at each half second of the run, read just after it', () => {
  const clock = new RunClock();
  clock.observe(0, 10);
  const near = (a: number, b: number) =>
    assert.ok(Math.abs(a - b) < 1e-9, `${a} vs ${b}`);
  near(clock.untilNextReading(10), 0.5 + READING_MARGIN);
  near(clock.untilNextReading(10.5), 1 + READING_MARGIN); // reads 1 s from here until 1.5 s
  near(clock.untilNextReading(11.25), 0.25 + READING_MARGIN);
  // a timer that fired a hair early still waits only until just past the half second
  near(clock.untilNextReading(11.4999), 0.0001 + READING_MARGIN);
  assert.equal(new RunClock().untilNextReading(0), Infinity);
});
