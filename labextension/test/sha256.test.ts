// SHA-256 against the standard's vectors and against what the kernel computes for a cell,
// `hashlib.sha256(text.encode("utf-8")).hexdigest()` (jupyter_perf/frontend.py): an edit applies
// only when the two agree. The expected digests were printed by that very Python expression.
import assert from 'node:assert/strict';
import { test } from 'node:test';

import { sha256Hex } from '../src/sha256';

const a = (n: number) => 'a'.repeat(n);

test('the standard vectors (FIPS 180-2)', () => {
  assert.equal(
    sha256Hex(''),
    'e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855'
  );
  assert.equal(
    sha256Hex('abc'),
    'ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad'
  );
  assert.equal(
    sha256Hex('abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq'),
    '248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1'
  );
  assert.equal(
    sha256Hex(a(1_000_000)),
    'cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0'
  );
});

test('lengths around the padding boundaries, as hashlib digests them', () => {
  const expected: [number, string][] = [
    [55, '9f4390f8d30c2dd92ec9f095b65e2b9ae9b0a925a5258e241c9f1e910f734318'],
    [56, 'b35439a4ac6f0948b6d6f9e3c6af0f5f590ce20f1bde7090ef7970686ec6738a'],
    [63, '7d3e74a05d7db15bce4ad9ec0658ea98e3f06eeecf16b4c6fff2da457ddc2f34'],
    [64, 'ffe054fe7ae0cb6dc65c3af9b61d5209f439851db43d0ba5997337df154668eb'],
    [119, '31eba51c313a5c08226adf18d4a359cfdfd8d2e816b13f4af952f7ea6584dcfb'],
    [120, '2f3d335432c70b580af0e8e1b3674a7c020d683aa5f73aaaedfdc55af904c21c']
  ];
  for (const [n, digest] of expected) {
    assert.equal(sha256Hex(a(n)), digest, `${n} bytes`);
  }
});

test("cells' text is hashed as UTF-8, as the kernel hashes it", () => {
  assert.equal(
    sha256Hex(
      '# données synthétiques: this cell builds the DataLoader\nimport torch\n'
    ),
    'e2e80cde14466d18d308a7170787ad788fdea5cca24342e44a7bca5db5207726'
  );
  assert.equal(
    sha256Hex("print('😀 naïve café')\r\n"), // a surrogate pair, CRLF
    'dd07997e5e40f06c0dc563edad67c6c0446fe0a1026ed016a1fe4133d6f1c226'
  );
  assert.equal(
    sha256Hex('日本語のセル\n'),
    '39a11e87181f813054a7cf6bc5b8571cdf0f66a7fd70394219eb53508b30d848'
  );
});
