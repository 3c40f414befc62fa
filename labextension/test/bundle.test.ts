// The live dashboard's built module (build-live.mjs → jupyter_perf/ui/static/live.js) is what
// anywidget loads in every frontend: one ES module, no imports (nothing to resolve them against in
// VS Code or Colab), that touches no page when loaded, with `export default { render }`.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';

const BUNDLE = resolve(__dirname, '../../../jupyter_perf/ui/static/live.js');

test('the live bundle is a self-contained ES module whose default export renders', async () => {
  const source = readFileSync(BUNDLE, 'utf-8');
  // From a data: URL, as anywidget loads it from a blob: an import of anything would fail here.
  const url = `data:text/javascript;base64,${Buffer.from(source).toString('base64')}`;
  const module = await import(url);
  assert.equal(typeof module.default.render, 'function');
  assert.deepEqual(Object.keys(module), ['default']);
});
