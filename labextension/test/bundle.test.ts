// The widgets' built modules (build-widgets.mjs → jupyter_perf/ui/static/{live,panel}.js) are what
// anywidget loads in every frontend: one ES module each, no imports (nothing to resolve them against in
// VS Code or Colab), that touches no page when loaded, with `export default { render }`.
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { test } from 'node:test';

for (const name of ['live', 'panel']) {
  test(`the ${name} bundle is a self-contained ES module whose default export renders`, async () => {
    const source = readFileSync(
      resolve(__dirname, `../../../jupyter_perf/ui/static/${name}.js`),
      'utf-8'
    );
    // From a data: URL, as anywidget loads it from a blob: an import of anything would fail here.
    const url = `data:text/javascript;base64,${Buffer.from(source).toString('base64')}`;
    const module = await import(url);
    assert.equal(typeof module.default.render, 'function');
    assert.deepEqual(Object.keys(module), ['default']);
  });
}
