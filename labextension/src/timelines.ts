/**
 * The summary's timelines as interactive bokeh figures (docs/dashboard.md,
 * "After the run"; jupyter_perf/ui/bokeh_timelines.py).
 *
 * A summary the kernel could give interactive timelines carries, beside its
 * HTML, a bokeh document under `TIMELINES_MIME`. This renderer, ranked ahead
 * of the HTML one, draws the summary's HTML as JupyterLab would, then the
 * bokeh figures in place of its static SVG charts. BokehJS is not in the
 * notebook: it is bundled with this extension as a chunk of its own, loaded
 * once per page when the first summary with timelines is drawn (≈ 1.3 MB,
 * cached by the browser), so a saved notebook carries data, never the
 * library. Where anything fails (an older bokeh document, a page without
 * BokehJS), the static charts stay.
 *
 * The renderer is unsafe (a bokeh document could carry JavaScript callbacks):
 * JupyterLab uses it for trusted outputs only, and an untrusted notebook
 * shows the summary's sanitised HTML with its static charts.
 */

import type {
  IBokehRange,
  IBokehView
} from '@bokeh/bokehjs/build/js/bokeh.esm.min.js';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { Panel } from '@lumino/widgets';

export const TIMELINES_MIME = 'application/vnd.jupyter-perf.timelines+json';
/** Ahead of the HTML renderer (50): this one draws the summary's HTML itself. */
const RANK = 40;
/** The shared x range's name in the document (bokeh_timelines.py). */
const X_RANGE = 'jp-perf-x';
/** Where the summary's static charts are: the element holding its SVG charts. */
const STATIC_CHART = 'svg.jp-perf-chart';

/** The part of a notebook's rendermime registry this renderer uses. */
interface IRenderers {
  createRenderer(mimeType: string): IRenderMime.IRenderer;
}

interface ITimelinesPart {
  bokeh: string;
  item: unknown;
}

let bokehjs: Promise<
  typeof import('@bokeh/bokehjs/build/js/bokeh.esm.min.js').default
> | null = null;

/** BokehJS, loaded once per page (its chunk is fetched the first time, then shared by every output). */
function loadBokeh() {
  bokehjs ??= import(
    /* webpackChunkName: "bokehjs" */ '@bokeh/bokehjs/build/js/bokeh.esm.min.js'
  ).then(module => module.default);
  return bokehjs;
}

/** Register the renderer with every notebook's rendermime (as record.ts does for the panel). */
export function renderTimelines(tracker: INotebookTracker): void {
  const add = (panel: NotebookPanel) => {
    const rendermime = panel.content.rendermime;
    rendermime.addFactory(
      {
        safe: false,
        mimeTypes: [TIMELINES_MIME],
        createRenderer: () => new SummaryOutput(rendermime)
      },
      RANK
    );
  };
  tracker.widgetAdded.connect((_, panel) => add(panel));
  tracker.forEach(add);
}

class SummaryOutput extends Panel implements IRenderMime.IRenderer {
  constructor(private readonly _renderers: IRenderers) {
    super();
    this.addClass('jp-perf-summary-output');
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    this._clear();
    const html = this._renderers.createRenderer('text/html');
    this.addWidget(html);
    await html.renderModel(model);
    const part = model.data[TIMELINES_MIME] as unknown as ITimelinesPart;
    const charts = html.node.querySelector(STATIC_CHART)?.parentElement;
    if (!charts || !part?.item) {
      return;
    }
    const host = document.createElement('div');
    host.className = 'jp-perf-timelines';
    host.dataset.bokeh = part.bokeh;
    charts.after(host);
    try {
      const Bokeh = await loadBokeh();
      const views = await Bokeh.embed.embed_item(part.item, host);
      this._views = views.roots;
      charts.style.display = 'none';
      this._followRange(host);
    } catch (error) {
      host.remove();
      console.warn(
        'jupyter-perf: the interactive timelines could not be drawn; the static charts stay',
        error
      );
    }
  }

  dispose(): void {
    this._clear();
    super.dispose();
  }

  /** The shown stretch of time on the host (`data-x-start`, `data-x-end`, seconds): what zooms and pans changed. */
  private _followRange(host: HTMLElement): void {
    const document = this._views[0]?.model.document;
    const range = document?.get_model_by_name(X_RANGE) as IBokehRange | null;
    if (!range) {
      return;
    }
    const show = () => {
      host.dataset.xStart = String(range.start);
      host.dataset.xEnd = String(range.end);
    };
    range.change.connect(show);
    show();
  }

  private _clear(): void {
    for (const view of this._views) {
      view.remove();
    }
    this._views = [];
    for (const child of [...this.widgets]) {
      child.dispose();
    }
  }

  private _views: IBokehView[] = [];
}
