/**
 * Where a card stands after a click, in words: queued only while the
 * kernel has not started on it (a cell is running), running while it works
 * on it, then what the kernel said. Pure.
 */

import { ICard } from './model';

export type Phase = 'idle' | 'queued' | 'running';

/** A click not yet carried out: the card's `handled` count when it was made, and which button. */
export interface IPending {
  handled: number;
  action: string;
}

export const QUEUED =
  'queued: runs when the kernel is free (a cell is running)';

const RUNNING: { [action: string]: string } = {
  apply: 'running: applying…',
  'apply-rerun': 'running: applying, then profiling the cell again…',
  undo: 'running: undoing…',
  tune: 'running: measuring each value on the cell’s loop…'
};

export function phase(card: ICard, pending: IPending | undefined): Phase {
  if (pending === undefined || card.handled > pending.handled) {
    return 'idle';
  }
  return card.running ? 'running' : 'queued';
}

/** The state the card shows (its `data-state`) and the line under its buttons. */
export function status(
  card: ICard,
  pending: IPending | undefined
): { state: string; text: string } {
  const now = phase(card, pending);
  if (now === 'queued') {
    return { state: 'queued', text: QUEUED };
  }
  if (now === 'running') {
    return {
      state: 'running',
      text: RUNNING[pending?.action ?? ''] ?? 'running…'
    };
  }
  return { state: card.state, text: card.message };
}

/** Whether a button can be clicked now: the kernel allows it and no click on the card is pending. */
export function enabled(
  card: ICard,
  action: string,
  pending: IPending | undefined
): boolean {
  return phase(card, pending) === 'idle' && !!card.actions[action]?.enabled;
}
