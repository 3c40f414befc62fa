/**
 * The optimization panel's output: the live widget while its kernel has it,
 * its static record otherwise (jupyter_perf/ui/panel.py).
 *
 * The kernel displays the panel as one output carrying the widget view, a
 * static record (`text/html`, `text/plain`: what was recommended, what was
 * applied, the before/after) and the same view under `PANEL_MIME`. The widget
 * manager's renderer would draw the view even once its kernel is gone, as
 * "Error displaying widget: model not found", so this renderer, ranked ahead
 * of it, shows the record and swaps in the widget only when the widget
 * manager actually draws the panel. The panel's view announces each new
 * record (a `jupyter-perf-record` DOM event); the record is written into the
 * output, so the saved notebook always holds the panel's last state.
 */

import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import type { IRenderMime } from '@jupyterlab/rendermime-interfaces';
import { JSONObject, ReadonlyPartialJSONObject } from '@lumino/coreutils';
import { Panel, Widget } from '@lumino/widgets';

export const PANEL_MIME = 'application/vnd.jupyter-perf.panel+json';
const WIDGET_MIME = 'application/vnd.jupyter.widget-view+json';
const RECORD_EVENT = 'jupyter-perf-record';
/** Ahead of the widget manager's renderer, ranked -10. */
const RANK = -20;

/** The part of a notebook's rendermime registry this renderer uses. */
interface IRenderers {
  createRenderer(mimeType: string): IRenderMime.IRenderer;
}

/** Register the renderer with every notebook's rendermime (where the widget manager registers its own). */
export function renderPanels(tracker: INotebookTracker): void {
  const add = (panel: NotebookPanel) => {
    const rendermime = panel.content.rendermime;
    rendermime.addFactory(
      {
        safe: false,
        mimeTypes: [PANEL_MIME],
        createRenderer: () => new PanelOutput(rendermime)
      },
      RANK
    );
  };
  tracker.widgetAdded.connect((_, panel) => add(panel));
  tracker.forEach(add);
}

class PanelOutput extends Panel implements IRenderMime.IRenderer {
  constructor(private readonly _renderers: IRenderers) {
    super();
    this.addClass('jp-perf-panel-output');
    this.node.addEventListener(RECORD_EVENT, this._onRecord);
  }

  async renderModel(model: IRenderMime.IMimeModel): Promise<void> {
    this._model = model;
    const view = model.data[PANEL_MIME] as JSONObject;
    if (this._live && view.model_id === this._modelId) {
      return; // a new record of the panel on show: the widget draws its news itself
    }
    this._modelId = view.model_id;
    this._live = false;
    this._observer?.disconnect();
    for (const child of [...this.widgets]) {
      child.dispose();
    }
    const record = this._renderers.createRenderer('text/html');
    this.addWidget(record);
    await record.renderModel(model);
    let widget: IRenderMime.IRenderer;
    try {
      widget = this._renderers.createRenderer(WIDGET_MIME);
    } catch {
      return; // no widget manager in this JupyterLab: the record is all there is
    }
    widget.hide();
    this.addWidget(widget);
    const goLive = () => this._goLive(record, widget);
    this._observer = new MutationObserver(goLive);
    this._observer.observe(widget.node, { childList: true, subtree: true });
    await widget.renderModel({
      data: { [WIDGET_MIME]: view },
      metadata: model.metadata,
      trusted: model.trusted,
      setData: () => undefined
    });
    goLive();
  }

  dispose(): void {
    this._observer?.disconnect();
    this.node.removeEventListener(RECORD_EVENT, this._onRecord);
    super.dispose();
  }

  /** Show the widget instead of the record once the widget manager has drawn the panel's view. */
  private _goLive(record: Widget, widget: Widget): void {
    if (!this._live && widget.node.querySelector('.jp-perf-panel')) {
      this._live = true;
      this._observer?.disconnect();
      record.hide();
      widget.show();
    }
  }

  /** Keep the panel's latest record in the output (what a save writes); an unchanged record is left alone. */
  private readonly _onRecord = (event: Event): void => {
    event.stopPropagation();
    const record = (event as CustomEvent).detail as ReadonlyPartialJSONObject;
    const model = this._model;
    if (
      !model ||
      typeof record?.['text/html'] !== 'string' ||
      record['text/html'] === model.data['text/html']
    ) {
      return;
    }
    model.setData({ data: { ...model.data, ...record } });
  };

  private _model: IRenderMime.IMimeModel | null = null;
  private _modelId: unknown = null;
  private _live = false;
  private _observer: MutationObserver | null = null;
}
