/**
 * The run's clock in the page: how long the profiled cell has been running,
 * read from the page's own clock rather than from the samples being played
 * back (those are shown ≈ 0.65 s late, and the first one was taken at 0 s: a
 * header reading the played-back time said "3 µs" two seconds in).
 *
 * Each push carries the run's time when it was sent (`IStatus.t`); it
 * arrives a little later, so `arrival - t` is the page time the run started
 * plus the message's delay, and the smallest such value seen is the best
 * estimate of the start. The header shows whole seconds, changed when the
 * reading changes (at each half second of the run: never more than half a
 * second off), so text in the page changes once a second. Pure: times are
 * passed in, in seconds.
 *
 * The page's timers fire on another clock than `performance.now()`, which is
 * coarsened: a timer set for the half second can run a fraction of a
 * millisecond before it, read the old second, and wait a whole second more
 * (the header lagged the run by a second, seen in tests/ui). So the next
 * reading is due `READING_MARGIN` after the half second.
 */

/** Seconds after the half second at which the reading is taken: well past timer jitter, unseen by a reader. */
export const READING_MARGIN = 0.01;

export class RunClock {
  /** A status stamped `t` seconds into the run arrived at page time `now`. */
  observe(t: number, now: number): void {
    this._start = Math.min(this._start, now - t);
  }

  get known(): boolean {
    return Number.isFinite(this._start);
  }

  /** Seconds since the run started, at page time `now` (null before any status arrived). */
  elapsed(now: number): number | null {
    return this.known ? Math.max(0, now - this._start) : null;
  }

  /** Seconds from `now` until the whole-second reading has changed: just past the run's next half second. */
  untilNextReading(now: number): number {
    const elapsed = this.elapsed(now);
    if (elapsed === null) {
      return Infinity;
    }
    return Math.floor(elapsed + 0.5) + 0.5 + READING_MARGIN - elapsed;
  }

  private _start = Infinity;
}
