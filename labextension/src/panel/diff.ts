/**
 * A unified diff as lines to draw: each with the class that colours it
 * (`jpp-add`, `jpp-del`, `jpp-hunk`). Pure.
 */

export interface IDiffLine {
  cls: string;
  text: string;
}

export function diffLines(diff: string): IDiffLine[] {
  if (!diff) {
    return [];
  }
  return diff
    .replace(/\n$/, '')
    .split('\n')
    .map(text => ({ cls: lineClass(text), text }));
}

function lineClass(line: string): string {
  if (line.startsWith('@@')) {
    return 'jpp-hunk';
  }
  if (line.startsWith('+') && !line.startsWith('+++')) {
    return 'jpp-add';
  }
  if (line.startsWith('-') && !line.startsWith('---')) {
    return 'jpp-del';
  }
  return '';
}
