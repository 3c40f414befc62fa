// Bundles the live dashboard (src/live, compiled by tsc into lib/live) into one self-contained ES
// module, jupyter_perf/ui/static/live.js, which the Python package ships and anywidget loads
// (jupyter_perf/ui/live_widget.py): `export default { render }`, no imports, so it runs in any
// frontend anywidget supports, with or without this JupyterLab extension. rspack is the bundler the
// Jupyter builder itself uses: one toolchain. Minified (≈ 10 KB against 30 KB with its comments):
// every dashboard's widget carries the module to the browser, and a notebook executed by nbclient
// stores it with each dashboard's state.
import { rspack } from '@rspack/core';
import { dirname, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

const compiler = rspack({
  mode: 'production',
  context: here,
  entry: './lib/live/index.js',
  target: ['web', 'es2020'],
  devtool: false,
  output: {
    path: resolve(here, '../jupyter_perf/ui/static'),
    filename: 'live.js',
    module: true,
    library: { type: 'modern-module' },
    clean: false
  },
  performance: { hints: false }
});

compiler.run((error, stats) => {
  if (error || stats.hasErrors()) {
    console.error(error ?? stats.toString('errors-only'));
    process.exitCode = 1;
  }
  compiler.close(() => undefined);
});
