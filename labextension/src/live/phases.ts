/**
 * The last step's phase split: a stacked bar (its segments moved and scaled
 * with CSS transforms, which need no layout, with every frame) and a text
 * line with a legend of shares (text, so at most once a second).
 */

import { legendItem, node, setText, setTransform } from './dom';
import { IStep } from './model';
import {
  phaseShares,
  phaseTransforms,
  stepText,
  wholePercent
} from './readings';

export interface IPhaseView {
  /** Move the bar's segments to `step`'s shares. */
  showBar(step: IStep): void;
  /** Write the step's number, wall time and shares. */
  showText(step: IStep): void;
}

export function phaseView(
  parent: Element,
  colors: { [phase: string]: string }
): IPhaseView {
  const box = node('div', 'jpp-step', parent);
  box.dataset.jpp = 'phases';
  const text = node('div', 'jpp-step-text', box, 'waiting for the first step…');
  const bar = node('div', 'jpp-phase-bar', box);
  const legend = node('div', 'jpp-phase-legend', box);
  const phases = Object.keys(colors);
  const segments = new Map<string, HTMLElement>();
  const labels = new Map<string, HTMLElement>();
  for (const phase of phases) {
    const segment = node('div', 'jpp-phase', bar);
    segment.style.background = colors[phase];
    segment.title = phase;
    segments.set(phase, segment);
    labels.set(phase, legendItem(legend, colors[phase], phase));
  }
  return {
    showBar(step: IStep): void {
      const transforms = phaseTransforms(phaseShares(step, phases), phases);
      segments.forEach((segment, phase) =>
        setTransform(segment, transforms[phase])
      );
    },
    showText(step: IStep): void {
      setText(text, stepText(step));
      const shares = phaseShares(step, phases);
      labels.forEach((label, phase) =>
        setText(label, `${phase} ${wholePercent(shares[phase])}`)
      );
    }
  };
}
