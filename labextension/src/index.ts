/**
 * jupyter-perf for JupyterLab 4 (docs/labextension.md).
 *
 * What output JavaScript cannot do, this plugin does from inside the
 * application: rewrite any cell of a notebook by cell id when the kernel asks
 * (channel.ts), act on panel buttons at once while a cell runs (actions.ts),
 * draw the optimization panel, or its static record once its kernel is gone
 * (record.ts),
 * draw a summary's timelines as interactive bokeh figures, loading BokehJS
 * once per page (timelines.ts), and show the kernel's GPU/CPU in the status
 * bar with a list of the notebook's profiled runs (metrics.ts, runs.ts).
 */

import {
  JupyterFrontEnd,
  JupyterFrontEndPlugin
} from '@jupyterlab/application';
import {
  INotebookTracker,
  NotebookActions,
  NotebookPanel
} from '@jupyterlab/notebook';
import { ISettingRegistry } from '@jupyterlab/settingregistry';
import { IStatusBar } from '@jupyterlab/statusbar';

import { PanelActions } from './actions';
import { CellEditor } from './cellEdit';
import { EditChannel } from './channel';
import { listenForCellLinks } from './goToCell';
import { MetricsItem } from './metrics';
import { renderPanels } from './record';
import { RunsPanel } from './runs';
import { renderTimelines } from './timelines';

const PLUGIN_ID = 'jupyter-perf:plugin';
const SHOW_RUNS = 'jupyter-perf:show-runs';

const plugin: JupyterFrontEndPlugin<void> = {
  id: PLUGIN_ID,
  description:
    'Cell rewrites by cell id, panel clicks while a cell runs, and a GPU/CPU status-bar item for jupyter-perf.',
  autoStart: true,
  requires: [INotebookTracker],
  optional: [ISettingRegistry, IStatusBar],
  activate: (
    app: JupyterFrontEnd,
    tracker: INotebookTracker,
    settingRegistry: ISettingRegistry | null,
    statusBar: IStatusBar | null
  ) => {
    const editor = new CellEditor();
    new EditChannel(tracker, editor);
    new PanelActions(tracker, editor);
    renderPanels(tracker);
    renderTimelines(tracker);

    const activate = (panel: NotebookPanel) => app.shell.activateById(panel.id);
    // a card's "Rewrites cell [2]" link: scroll to that cell and flash it
    listenForCellLinks(tracker, activate);
    const runs = new RunsPanel(tracker, activate);
    app.commands.addCommand(SHOW_RUNS, {
      label: 'Show profiled runs (jupyter-perf)',
      execute: () => {
        if (!runs.isAttached) {
          app.shell.add(runs, 'right', { rank: 900 });
        }
        app.shell.activateById(runs.id);
      }
    });
    NotebookActions.executed.connect((_, { notebook }) => {
      if (notebook === tracker.currentWidget?.content) {
        runs.refresh();
      }
    });

    const item = new MetricsItem(tracker, () => {
      void app.commands.execute(SHOW_RUNS);
    });
    statusBar?.registerStatusItem(PLUGIN_ID, {
      item,
      align: 'left',
      rank: 100
    });

    const configure = (settings: ISettingRegistry.ISettings | null) => {
      const get = <T>(key: string, fallback: T): T =>
        settings ? (settings.get(key).composite as T) : fallback;
      editor.saveAfterEdit = get('saveAfterEdit', true);
      item.configure(get('statusBar', true), get('refreshInterval', 1000));
    };
    if (settingRegistry) {
      settingRegistry
        .load(PLUGIN_ID)
        .then(settings => {
          configure(settings);
          settings.changed.connect(configure);
        })
        .catch(error => {
          console.warn(
            'jupyter-perf: settings not loaded, using defaults',
            error
          );
          configure(null);
        });
    } else {
      configure(null);
    }
  }
};

export default plugin;
