/**
 * The jupyter-perf live dashboard: the anywidget view of
 * jupyter_perf/ui/live_widget.py (docs/dashboard.md).
 *
 * Built into one self-contained ES module, `jupyter_perf/ui/static/live.js`,
 * with `export default { render }` and no imports, so that anywidget renders
 * it wherever it runs (JupyterLab, Notebook 7, VS Code, Colab) without the
 * JupyterLab extension.
 *
 * The kernel pushes a `frame` twice a second with the samples taken since the
 * last one; the view plays them back at their sampling cadence
 * (`playback.ts`). Gauges and timelines redraw together, in one browser frame,
 * once per FRAME_MS when samples are due; the text in the page once per
 * TEXT_PERIOD.
 */

import { legendItem, node, setText, themeStyle } from './dom';
import { gaugeCard, IGaugeCard } from './gauges';
import { IFrame, IMeta, IRow } from './model';
import { phaseView } from './phases';
import { Playback, Throttle } from './playback';
import {
  CPU_ROWS,
  cpuGauge,
  elapsedText,
  GPU_ROWS,
  gpuGauge,
  MEMORY_ROWS,
  memoryGauge,
  throughputText
} from './readings';
import { stripChart } from './strip';

/**
 * Each redraw costs CPU on the machine the kernel runs on, mostly per frame
 * whatever changed (committing the frame, software compositing: ≈ 5 ms a
 * frame in JupyterLab on the 2-core development VM). So gauges and timelines
 * redraw together, once per FRAME_MS when samples are due: ≈ 6.7 redraws a
 * second, some showing two samples at the default 10 Hz sampling.
 */
const FRAME_MS = 150;
/**
 * Seconds between two updates of the text in the page (elapsed time,
 * throughput, the step): text changed in a JupyterLab page costs a layout
 * and a re-raster around it, ≈ 10 ms a time here.
 */
const TEXT_PERIOD = 1;

/** The part of anywidget's model this view uses (traits of LiveDashboard). */
interface IModel {
  get(name: 'meta'): IMeta;
  get(name: 'frame'): IFrame | null;
  get(name: 'done'): boolean;
  on(event: string, callback: () => void): void;
  off(event: string, callback: () => void): void;
}

function render({ model, el }: { model: IModel; el: HTMLElement }): () => void {
  const meta = model.get('meta');
  const root = node('div', 'jpp-live', el);
  root.dataset.jpp = 'dashboard';

  // header line
  const head = node('div', 'jpp-head', root);
  const dot = node('span', 'jpp-dot', head);
  node('b', '', head, 'jupyter-perf ');
  const status = node('span', 'jpp-status', head, 'profiling');
  const elapsed = node('span', 'jpp-elapsed', head, '');
  const throughput = node('span', 'jpp-throughput', head, '');
  throughput.dataset.jpp = 'throughput';

  // gauges
  const style = themeStyle(null); // the theme's colours once the view is in the page (first resize)
  const gauges = node('div', 'jpp-gauges', root);
  gauges.dataset.jpp = 'gauges';
  const cpu = gaugeCard(gauges, `CPU · ${meta.cores} cores`, CPU_ROWS, style);
  const mem = gaugeCard(
    gauges,
    'Memory · kernel + DataLoader workers',
    MEMORY_ROWS,
    style
  );
  const gpuCards = meta.gpus.map(g =>
    gaugeCard(gauges, `GPU${g.index} · ${g.name}`, GPU_ROWS, style)
  );
  const cards: IGaugeCard[] = [cpu, mem, ...gpuCards];
  if (!meta.gpus.length) {
    const card = node('div', 'jpp-card jpp-card-empty', gauges);
    node('div', 'jpp-card-title', card, 'GPU');
    node('div', 'jpp-caption', card, meta.gpu_note || 'no GPU sampled');
  }

  // step phases
  const phases = phaseView(root, meta.phase_colors);

  // timeline
  const timeline = node('div', 'jpp-timeline', root);
  timeline.dataset.jpp = 'timeline';
  timeline.dataset.rows = '0';
  const charts = meta.panels.map(spec => {
    const panelHead = node('div', 'jpp-panel-head', timeline);
    node('b', '', panelHead, spec.title);
    node('span', 'jpp-caption', panelHead, ` ${spec.unit}`);
    for (const s of spec.series) {
      legendItem(panelHead, s.color, s.label);
    }
    return stripChart(timeline, spec, meta.rollover, meta.mark_rollover, style);
  });

  // Canvas widths follow the notebook's width; read here, never during a redraw (a forced layout).
  const sized = new Map<Element, (width: number) => void>([
    [timeline, w => charts.forEach(chart => chart.resize(w))]
  ]);
  for (const card of cards) {
    sized.set(card.canvas, card.resize);
  }
  const drawCharts = () => charts.forEach(chart => chart.draw());
  let visible = true;
  let stale = false; // rows arrived while the dashboard was scrolled out of sight: redraw when back
  const resizer =
    typeof ResizeObserver === 'function'
      ? new ResizeObserver(entries => {
          if (root.isConnected) {
            Object.assign(style, themeStyle(root));
          }
          for (const entry of entries) {
            sized.get(entry.target)?.(entry.contentRect.width);
          }
          if (visible) {
            drawCharts();
          }
        })
      : null;
  sized.forEach((resize, target) => {
    if (resizer) {
      resizer.observe(target);
    } else {
      resize(target.clientWidth);
    }
  });
  const observer =
    typeof IntersectionObserver === 'function'
      ? new IntersectionObserver(entries => {
          visible = entries[entries.length - 1].isIntersecting;
          if (visible && stale) {
            drawCharts();
          }
        })
      : null;
  observer?.observe(root);

  // The gauges' canvases are redrawn with every frame; the text in the page (elapsed time,
  // throughput, the step's phases) at most every TEXT_PERIOD: it stays readable, and text costs a layout.
  function showGauges(r: IRow): void {
    cpu.draw(cpuGauge(r));
    mem.draw(memoryGauge(r));
    (r.gpus ?? []).forEach((g, i) => {
      if (gpuCards[i] && g) {
        gpuCards[i].draw(gpuGauge(g));
      }
    });
    if (r.step) {
      phases.showBar(r.step);
    }
  }

  function showText(r: IRow): void {
    setText(elapsed, elapsedText(r.t));
    if (r.rate) {
      setText(throughput, throughputText(r.rate));
    }
    if (r.step) {
      phases.showText(r.step);
    }
  }

  // playback
  const playback = new Playback(meta.delay);
  const text = new Throttle(TEXT_PERIOD);
  const now = () => performance.now() / 1000;
  const onFrame = () => playback.receive(model.get('frame'), now());

  /** One redraw of everything per FRAME_MS, with the rows that are due. */
  function tick(): void {
    const t = now();
    const rows = playback.due(t);
    if (!rows.length) {
      return;
    }
    for (const chart of charts) {
      chart.push(rows);
    }
    timeline.dataset.rows = String(Number(timeline.dataset.rows) + rows.length);
    if (!visible) {
      stale = true; // nothing to see: no redraw
      return;
    }
    stale = false;
    const last = rows[rows.length - 1];
    showGauges(last);
    if (text.due(t)) {
      showText(last);
    }
    drawCharts();
  }

  const onDone = () => {
    if (model.get('done')) {
      status.textContent = 'finishing';
      dot.dataset.state = 'done';
    }
  };
  model.on('change:frame', onFrame);
  model.on('change:done', onDone);
  onFrame();
  onDone();
  const timer = window.setInterval(tick, FRAME_MS);

  return () => {
    window.clearInterval(timer);
    observer?.disconnect();
    resizer?.disconnect();
    model.off('change:frame', onFrame);
    model.off('change:done', onDone);
  };
}

export default { render };
