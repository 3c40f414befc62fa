/**
 * The jupyter-perf live dashboard: the anywidget view of
 * jupyter_perf/ui/live_widget.py (docs/dashboard.md).
 *
 * Built into one self-contained ES module, `jupyter_perf/ui/static/live.js`,
 * with `export default { render }` and no imports, so that anywidget renders
 * it wherever it runs (JupyterLab, Notebook 7, VS Code, Colab) without the
 * JupyterLab extension.
 *
 * The kernel pushes a `frame` (ten times a second for the run's first two
 * seconds, then twice a second) with the samples taken since the last one and
 * the run's status. The samples are played back at their sampling cadence
 * (`playback.ts`): gauges and timelines redraw together, in one browser frame,
 * once per FRAME_MS when samples are due. The header (elapsed time, steps,
 * rates), the step's phases and the ranks read the latest status, not the
 * played-back samples: they are about now. Their text changes once a second,
 * when the elapsed time's reading does (`clock.ts`), and at once when the
 * first step is counted.
 */

import { legendItem, node, setText, themeStyle } from './dom';
import { RunClock } from './clock';
import { gaugeCard, IGaugeCard } from './gauges';
import { IFrame, IMeta, IRow, IStatus } from './model';
import { phaseView } from './phases';
import { Playback } from './playback';
import { ranksView } from './ranks';
import {
  CPU_ROWS,
  cpuGauge,
  cpuTitle,
  elapsedText,
  emptyGauge,
  GaugeKind,
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
  elapsed.dataset.jpp = 'elapsed';
  const throughput = node('span', 'jpp-throughput', head, '');
  throughput.dataset.jpp = 'throughput';

  // gauges, drawn at once (empty) so the dashboard looks alive before its first sample
  const style = themeStyle(null); // the theme's colours once the view is in the page (first resize)
  const gauges = node('div', 'jpp-gauges', root);
  gauges.dataset.jpp = 'gauges';
  const card = (title: string, kinds: GaugeKind[]) => {
    const made = gaugeCard(gauges, title, kinds, style);
    made.draw(emptyGauge(kinds));
    return made;
  };
  const cpu = card(cpuTitle(meta.cores), CPU_ROWS);
  const mem = card('Memory · kernel + DataLoader workers', MEMORY_ROWS);
  const gpuCards = meta.gpus.map(g =>
    card(`GPU${g.index} · ${g.name}`, GPU_ROWS)
  );
  const cards: IGaugeCard[] = [cpu, mem, ...gpuCards];
  if (!meta.gpus.length) {
    const empty = node('div', 'jpp-card jpp-card-empty', gauges);
    node('div', 'jpp-card-title', empty, 'GPU');
    node('div', 'jpp-caption', empty, meta.gpu_note || 'no GPU sampled');
  }

  // step phases, and the ranks the cell launched
  const phases = phaseView(root, meta.phase_colors);
  const ranks = ranksView(root, meta.phase_colors);

  // timeline
  const timeline = node('div', 'jpp-timeline', root);
  timeline.dataset.jpp = 'timeline';
  timeline.dataset.rows = '0';
  const charts = meta.panels.map(spec => {
    const panelHead = node('div', 'jpp-panel-head', timeline);
    node('b', '', panelHead, spec.title);
    const unit = node('span', 'jpp-caption jpp-unit', panelHead);
    for (const s of spec.series) {
      legendItem(panelHead, s.color, s.label);
    }
    return stripChart(
      timeline,
      spec,
      meta.rollover,
      meta.mark_rollover,
      style,
      unit
    );
  });

  // Canvas widths follow the notebook's width; read here, never during a redraw (a forced layout).
  const sized = new Map<Element, (width: number) => void>([
    [timeline, w => charts.forEach(chart => chart.resize(w))]
  ]);
  for (const gauge of cards) {
    sized.set(gauge.canvas, gauge.resize);
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
          if (visible && textStale) {
            showText();
          }
        })
      : null;
  observer?.observe(root);

  // The gauges' canvases are redrawn with every frame from the played-back samples.
  function showGauges(r: IRow): void {
    cpu.draw(cpuGauge(r));
    mem.draw(memoryGauge(r));
    (r.gpus ?? []).forEach((g, i) => {
      if (gpuCards[i] && g) {
        gpuCards[i].draw(gpuGauge(g));
      }
    });
  }

  // The run's status: the header, the step's phases and the ranks, about now.
  const clock = new RunClock();
  let latest: IStatus | null = null;
  let barShown: IStatus | null = null;
  let counted = false; // the header has shown a step count
  let textStale = false; // the text was due while the dashboard was out of sight
  let textTimer = 0;
  let running = true;
  const now = () => performance.now() / 1000;

  /** Write the header, the step's text and the ranks; then wait for the elapsed time's next reading. */
  function showText(): void {
    window.clearTimeout(textTimer);
    if (!visible) {
      textStale = true;
      return;
    }
    textStale = false;
    const at = now(); // one reading of the clock: the text shown and the next timer agree on the second
    const seconds = clock.elapsed(at);
    if (seconds !== null) {
      setText(elapsed, elapsedText(seconds));
    }
    if (latest) {
      setText(throughput, throughputText(latest));
      counted = latest.steps > 0;
      if (latest.step) {
        phases.showText(latest.step);
      }
      ranks.show(latest.ranks);
    }
    if (running && clock.known) {
      textTimer = window.setTimeout(
        showText,
        clock.untilNextReading(at) * 1000
      );
    }
  }

  function receiveStatus(frame: IFrame | null): void {
    const s = frame?.status;
    if (!s || s === latest) {
      return;
    }
    const first = !clock.known;
    clock.observe(s.t, now());
    latest = s;
    if (first || (!counted && s.steps > 0)) {
      showText(); // the first status, and the first step counted, show at once
    }
  }

  // playback
  const playback = new Playback(meta.delay);
  const onFrame = () => {
    const frame = model.get('frame');
    playback.receive(frame, now());
    receiveStatus(frame);
  };

  /** One redraw of everything per FRAME_MS, with the rows that are due. */
  function tick(): void {
    if (latest?.step && latest !== barShown && visible) {
      barShown = latest;
      phases.showBar(latest.step); // CSS transforms: no layout
    }
    const rows = playback.due(now());
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
    showGauges(rows[rows.length - 1]);
    drawCharts();
  }

  const onDone = () => {
    if (model.get('done') && running) {
      running = false;
      status.textContent = 'finishing';
      dot.dataset.state = 'done';
      showText(); // the last reading, and no timer after it
    }
  };
  model.on('change:frame', onFrame);
  model.on('change:done', onDone);
  onFrame();
  onDone();
  const timer = window.setInterval(tick, FRAME_MS);

  return () => {
    window.clearInterval(timer);
    window.clearTimeout(textTimer);
    observer?.disconnect();
    resizer?.disconnect();
    model.off('change:frame', onFrame);
    model.off('change:done', onDone);
  };
}

export default { render };
