/**
 * The one span that differs between a cell's text and its rewrite, so a
 * rewrite replaces only that span and the cursor and the rest of the text
 * stay put (cellEdit.ts). Pure.
 */

/**
 * `[start, end, text]` such that replacing `before[start:end]` by `text` gives `after`.
 * The span never cuts a UTF-16 surrogate pair in two.
 */
export function changedSpan(
  before: string,
  after: string
): [number, number, string] {
  let start = 0;
  const limit = Math.min(before.length, after.length);
  while (start < limit && before[start] === after[start]) {
    start++;
  }
  if (start > 0 && isHighSurrogate(before.charCodeAt(start - 1))) {
    start--;
  }
  let tail = 0;
  while (
    tail < limit - start &&
    before[before.length - 1 - tail] === after[after.length - 1 - tail]
  ) {
    tail++;
  }
  if (tail > 0 && isLowSurrogate(before.charCodeAt(before.length - tail))) {
    tail--;
  }
  return [start, before.length - tail, after.slice(start, after.length - tail)];
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}
