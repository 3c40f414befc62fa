/**
 * The playback clock: which samples to show, and when.
 *
 * The kernel pushes a frame twice a second, each carrying the samples taken
 * since the last one. Row `r` is shown at browser time `r.t + offset`, where
 * `offset` is the smallest delay seen between a row's sampling and its
 * arrival plus `delay` (one push period and a margin for jitter), so the
 * gauges and the timelines move at the sampling rate while the browser gets
 * one small message per push. Pure: times are passed in, in seconds.
 */

import { IFrame, IRow } from './model';

/** Seconds: a view this late (hidden tab, stalled kernel) catches up at once. */
export const MAX_BEHIND = 1.5;

export class Playback {
  /** `delay`: seconds between a row's sampling and the earliest it is shown (IMeta.delay). */
  constructor(private readonly _delay: number) {}

  /** Queue the rows of a frame that arrived at `now`; a frame seen before is ignored. */
  receive(frame: IFrame | null | undefined, now: number): void {
    if (!frame || frame.seq === this._lastSeq || !frame.rows) {
      return;
    }
    this._lastSeq = frame.seq;
    if (!frame.rows.length) {
      return;
    }
    const lag = now - frame.rows[frame.rows.length - 1].t;
    this._bestLag = Math.min(this._bestLag, lag);
    this._queue.push(...frame.rows);
  }

  /** The rows due at `now`, oldest first, taken off the queue (none: an empty list). */
  due(now: number): IRow[] {
    const queue = this._queue;
    if (!queue.length) {
      return [];
    }
    if (now - this._showAt(queue[0]) > MAX_BEHIND) {
      // resynchronise: show the newest now
      this._bestLag = now - queue[queue.length - 1].t - this._delay;
    }
    let due = 0;
    while (due < queue.length && this._showAt(queue[due]) <= now) {
      due++;
    }
    return queue.splice(0, due);
  }

  private _showAt(row: IRow): number {
    return row.t + this._bestLag + this._delay;
  }

  private readonly _queue: IRow[] = [];
  private _lastSeq = -1;
  private _bestLag = Infinity;
}
