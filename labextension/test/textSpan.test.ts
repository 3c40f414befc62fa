// The span a rewrite replaces (cellEdit.ts): applied to the old text it gives the new one, it is
// as small as the texts allow, and it never cuts a UTF-16 surrogate pair in two.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { changedSpan } from '../src/textSpan';

function apply(before: string, after: string): [number, number, string] {
  const span = changedSpan(before, after);
  const [start, end, text] = span;
  assert.equal(before.slice(0, start) + text + before.slice(end), after);
  return span;
}

test('only the part that differs is replaced', () => {
  assert.deepEqual(apply('abc', 'abc'), [3, 3, '']);
  assert.deepEqual(
    apply(
      'loader = DataLoader(data, batch_size=32)\n',
      'loader = DataLoader(data, batch_size=32, num_workers=4)\n'
    ),
    [39, 39, ', num_workers=4']
  );
  assert.deepEqual(apply('x = 1\ny = 2\n', 'y = 2\n'), [0, 6, '']);
  assert.deepEqual(apply('', 'new'), [0, 0, 'new']);
  assert.deepEqual(apply('old', ''), [0, 3, '']);
});

test('repeated characters: the common head and tail never overlap', () => {
  assert.deepEqual(apply('aaa', 'aaaa'), [3, 3, 'a']);
  assert.deepEqual(apply('aaaa', 'aa'), [2, 4, '']);
  assert.deepEqual(apply('abab', 'ab'), [2, 4, '']);
});

test('a surrogate pair is replaced whole', () => {
  // 😀 U+1F600 and 😁 U+1F601 share their high surrogate: the span must start before it
  assert.deepEqual(apply('x😀y', 'x😁y'), [1, 3, '😁']);
  // 😀 U+1F600 and 🈀 U+1F200 share their low surrogate: the span must end after it
  const [start, end] = apply('x😀y', 'x🈀y');
  assert.deepEqual([start, end], [1, 3]);
});
