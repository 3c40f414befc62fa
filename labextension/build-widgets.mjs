// Bundles the widgets' views (src/live: the live dashboard; src/panel: the optimization panel; compiled by
// tsc into lib/) into one self-contained ES module each, jupyter_perf/ui/static/{live,panel}.js, which the
// Python package ships and anywidget loads (jupyter_perf/ui/live_widget.py, jupyter_perf/ui/panel.py):
// `export default { render }`, no imports and no shared chunks, so each runs in any frontend anywidget
// supports, with or without this JupyterLab extension. rspack is the bundler the Jupyter builder itself
// uses: one toolchain. Minified (the live view ≈ 10 KB against 30 KB with its comments): every widget
// carries its module to the browser, and a notebook executed by nbclient stores it with each widget's state.
import { rspack } from '@rspack/core';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

/** One bundle per view, each compiled on its own so that nothing they share becomes a chunk to import. */
const bundle = name => ({
  name,
  mode: 'production',
  context: here,
  entry: `./lib/${name}/index.js`,
  target: ['web', 'es2020'],
  devtool: false,
  output: {
    path: resolve(here, '../jupyter_perf/ui/static'),
    filename: `${name}.js`,
    module: true,
    library: { type: 'modern-module' },
    clean: false
  },
  performance: { hints: false }
});

const compiler = rspack([bundle('live'), bundle('panel')]);

compiler.run((error, stats) => {
  if (error || stats.hasErrors()) {
    console.error(error ?? stats.toString('errors-only'));
    process.exitCode = 1;
  }
  compiler.close(() => undefined);
});
