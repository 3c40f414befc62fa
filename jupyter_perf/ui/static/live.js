// jupyter-perf live dashboard (anywidget ESM, no build step).
//
// The kernel pushes a `frame` at most 4 times a second, each carrying the
// samples taken since the last one. This view plays them back at their own
// sampling cadence, a fixed delay behind, so the gauges and the bokeh
// timelines move at the sampling rate (10 Hz by default) while the browser
// gets one small message per push. The timelines are a bokeh document
// embedded here and streamed in the browser (rollover keeps them bounded);
// BokehJS comes in the `_bokehjs` trait the first time this browser page
// needs it, and is kept by the page afterwards.

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const MAX_BEHIND = 1.5; // s: a view this late (hidden tab, stalled kernel) catches up at once
const TICK_MS = 50;
// Each redraw costs CPU on the machine the kernel runs on: in a browser without GPU compositing
// ≈ 6 ms for the gauges and ≈ 8 ms per timeline panel. Gauges and timelines redraw together (one
// frame for both), on average at most once per FRAME_PERIOD whatever the sampling rate: at 10 Hz
// sampling ≈ 8 redraws a second, now and then one that shows two samples.
const FRAME_PERIOD = 0.125;

function node(tag, cls, parent, text) {
  const e = document.createElement(tag);
  if (cls) e.className = cls;
  if (text !== undefined) e.textContent = text;
  if (parent) parent.appendChild(e);
  return e;
}

// Write to the DOM only what changed: every write costs the browser a style and paint pass.
function setText(e, text) {
  if (e.textContent !== text) e.textContent = text;
}
function setAttr(e, name, value) {
  if (e.getAttribute(name) !== value) e.setAttribute(name, value);
}
function setStyle(e, name, value) {
  if (e.style[name] !== value) e.style[name] = value;
}

const missing = (v) => v === null || v === undefined || Number.isNaN(v);

function fmtBytes(b) {
  if (missing(b)) return "—";
  return b >= GiB ? `${(b / GiB).toFixed(2)} GiB` : `${(b / MiB).toFixed(0)} MiB`;
}

function fmtNum(v) {
  if (missing(v)) return "—";
  if (Math.abs(v) >= 1000) return Math.round(v).toLocaleString("en-US");
  return Math.abs(v) >= 10 ? v.toFixed(1) : v.toPrecision(3);
}

function fmtSeconds(s) {
  if (missing(s)) return "—";
  if (s < 1e-3) return `${(s * 1e6).toFixed(0)} µs`;
  if (s < 1) return `${(s * 1e3).toFixed(1)} ms`;
  if (s < 60) return `${s.toFixed(1)} s`;
  return `${Math.floor(s / 60)} min ${(s % 60).toFixed(0)} s`;
}

const level = (pct) => (pct >= 90 ? "hot" : pct >= 70 ? "warm" : "ok");

// A half-circle gauge: an arc filled to `pct`, the value in the middle, a caption under it.
function arcGauge(parent, title) {
  const card = node("div", "jpp-card", parent);
  node("div", "jpp-card-title", card, title);
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", "0 0 100 58");
  svg.setAttribute("class", "jpp-arc");
  const arc = "M 10 52 A 40 40 0 0 1 90 52";
  const bg = document.createElementNS(ns, "path");
  bg.setAttribute("d", arc);
  bg.setAttribute("class", "jpp-arc-bg");
  const fg = document.createElementNS(ns, "path");
  fg.setAttribute("d", arc);
  fg.setAttribute("class", "jpp-arc-fg");
  fg.setAttribute("pathLength", "100");
  fg.setAttribute("stroke-dasharray", "100 100");
  fg.setAttribute("stroke-dashoffset", "100");
  const text = document.createElementNS(ns, "text");
  text.setAttribute("x", "50");
  text.setAttribute("y", "50");
  text.setAttribute("class", "jpp-arc-value");
  text.textContent = "—";
  svg.append(bg, fg, text);
  card.appendChild(svg);
  const caption = node("div", "jpp-caption", card, "");
  return {
    card,
    caption,
    set(pct, label) {
      const p = missing(pct) ? 0 : Math.max(0, Math.min(100, pct));
      setAttr(fg, "stroke-dashoffset", (100 - p).toFixed(1));
      setAttr(fg, "data-level", missing(pct) ? "none" : level(p));
      setText(text, label ?? (missing(pct) ? "—" : `${pct.toFixed(0)}%`));
    },
  };
}

function meterBar(parent) {
  const bar = node("div", "jpp-meter", parent);
  const fill = node("div", "jpp-meter-fill", bar);
  return (pct) => {
    const p = missing(pct) ? 0 : Math.max(0, Math.min(100, pct));
    setStyle(fill, "width", `${p.toFixed(1)}%`);
    setAttr(fill, "data-level", level(p));
  };
}

function ensureBokeh(model, version) {
  const ready = () => window.Bokeh && window.Bokeh.version === version && window.Bokeh.embed;
  if (!ready()) {
    const code = model.get("_bokehjs");
    if (code) {
      const script = document.createElement("script");
      script.textContent = code; // a classic script: it defines window.Bokeh as it runs
      document.head.appendChild(script);
      script.remove();
    }
  }
  if (!ready()) return false;
  skipIdenticalStyleRewrites(window.Bokeh);
  return true;
}

// At every paint BokehJS rewrites the <style> that positions each of a plot's renderers (axes,
// grids, glyphs), changed or not, and each rewrite invalidates the styles of the plot's shadow
// root; bokeh then reads its visuals' CSS variables (getComputedStyle), which recalculates them at
// once: ≈ 5 forced style recalculations per panel and redraw. Skipping the rewrites that change
// nothing renders the same and leaves ≈ 1 (measured: 11 → 3 per redraw, style time -30 %).
function skipIdenticalStyleRewrites(Bokeh) {
  const dom = typeof Bokeh.require === "function" ? Bokeh.require("core/dom") : null;
  const sheet = dom && dom.InlineStyleSheet ? dom.InlineStyleSheet.prototype : null;
  if (!sheet || typeof sheet._update !== "function" || sheet._update.jppSkipsIdentical) return;
  const update = sheet._update;
  const skipping = function (css) {
    if (this.el.textContent !== css) update.call(this, css);
  };
  skipping.jppSkipsIdentical = true;
  sheet._update = skipping;
}

function nanify(v) {
  return v === null || v === undefined ? NaN : v;
}

function render({ model, el }) {
  const meta = model.get("meta");
  const root = node("div", "jpp-live", el);
  root.dataset.jpp = "dashboard";

  // ------------------------------------------------------------ header line
  const head = node("div", "jpp-head", root);
  const dot = node("span", "jpp-dot", head);
  node("b", "", head, "jupyter-perf ");
  const status = node("span", "jpp-status", head, "profiling");
  const elapsed = node("span", "jpp-elapsed", head, "");
  const throughput = node("span", "jpp-throughput", head, "");
  throughput.dataset.jpp = "throughput";

  // ----------------------------------------------------------------- gauges
  const gauges = node("div", "jpp-gauges", root);
  gauges.dataset.jpp = "gauges";
  const cpu = arcGauge(gauges, `CPU · ${meta.cores} cores`);
  const coreBox = node("div", "jpp-cores", cpu.card);
  const coreBars = [];
  for (let i = 0; i < meta.cores; i++) {
    const b = node("div", "jpp-core", coreBox);
    b.title = `cpu${i}`;
    coreBars.push(node("div", "jpp-core-fill", b));
  }
  const mem = arcGauge(gauges, "Memory · kernel + DataLoader workers");
  const memBar = meterBar(mem.card);
  const gpuCards = meta.gpus.map((g) => {
    const gauge = arcGauge(gauges, `GPU${g.index} · ${g.name}`);
    const setMem = meterBar(gauge.card);
    const memText = node("div", "jpp-caption", gauge.card, "");
    return { gauge, setMem, memText };
  });
  if (!meta.gpus.length) {
    const card = node("div", "jpp-card jpp-card-empty", gauges);
    node("div", "jpp-card-title", card, "GPU");
    node("div", "jpp-caption", card, meta.gpu_note || "no GPU sampled");
  }

  // --------------------------------------------------------- step phases
  const stepBox = node("div", "jpp-step", root);
  stepBox.dataset.jpp = "phases";
  const stepText = node("div", "jpp-step-text", stepBox, "waiting for the first step…");
  const phaseBar = node("div", "jpp-phase-bar", stepBox);
  const phaseLegend = node("div", "jpp-phase-legend", stepBox);
  const segments = {};
  const legendItems = {};
  for (const [phase, color] of Object.entries(meta.phase_colors)) {
    const seg = node("div", "jpp-phase", phaseBar);
    seg.style.background = color;
    seg.title = phase;
    segments[phase] = seg;
    const item = node("span", "jpp-legend-item", phaseLegend);
    node("span", "jpp-swatch", item).style.background = color;
    legendItems[phase] = node("span", "", item, phase);
  }

  // -------------------------------------------------------------- timeline
  // One bokeh document per panel, under an HTML title and legend (drawn by bokeh, legends
  // cost as much as the lines: they are re-laid out at every streamed row).
  const timeline = node("div", "jpp-timeline", root);
  timeline.dataset.jpp = "timeline";
  timeline.dataset.rows = "0";
  const panels = [];
  let disposed = false;

  if (ensureBokeh(model, meta.bokeh_version)) {
    for (const spec of meta.panels) {
      const panel = { spec, rows: null, marks: null, views: null, doc: null };
      const head = node("div", "jpp-panel-head", timeline);
      node("b", "", head, spec.title);
      node("span", "jpp-caption", head, ` ${spec.unit}`);
      for (const s of spec.series) {
        const item = node("span", "jpp-legend-item", head);
        node("span", "jpp-swatch", item).style.background = s.color;
        node("span", "", item, s.label);
      }
      const plot = node("div", "jpp-panel-plot", timeline);
      panels.push(panel);
      window.Bokeh.embed
        .embed_item(spec.item, plot)
        .then((views) => {
          if (disposed) {
            views.clear();
            return;
          }
          panel.views = views;
          panel.doc = views.roots[0] ? views.roots[0].model.document : null;
          if (panel.doc) {
            panel.rows = panel.doc.get_model_by_name(meta.sources.rows);
            panel.marks = panel.doc.get_model_by_name(meta.sources.marks);
          }
        })
        .catch((err) => {
          plot.textContent = `timeline unavailable: ${err}`;
        });
    }
  } else {
    node("div", "jpp-caption", timeline, "timelines unavailable: BokehJS is not loaded in this page; re-run the cell");
    model.send({ event: "bokehjs-missing" });
  }

  function streamPlot(rows) {
    const marks = rows.flatMap((r) => r.marks || []);
    for (const panel of panels) {
      if (!panel.rows) continue;
      const cols = { t: rows.map((r) => r.t) };
      for (const s of panel.spec.series) cols[s.column] = rows.map((r) => nanify(r.p[s.column]));
      panel.rows.stream(cols, meta.rollover, { sync: false });
      if (marks.length) {
        panel.marks.stream(
          { t: marks.map((m) => m[0]), y: marks.map(() => 1), label: marks.map((m) => `step ${m[1]}`) },
          meta.mark_rollover,
          { sync: false }
        );
      }
    }
    timeline.dataset.rows = String(Number(timeline.dataset.rows) + rows.length);
  }

  function showGauges(r) {
    setText(elapsed, ` · ${fmtSeconds(r.t)}`);
    cpu.set(r.cpu);
    setText(cpu.caption, missing(r.proc) ? "" : `this kernel + workers ${fmtNum(r.proc)}% of one core`);
    (r.cores || []).forEach((pct, i) => {
      if (coreBars[i]) {
        setStyle(coreBars[i], "height", `${missing(pct) ? 0 : Math.min(100, pct).toFixed(0)}%`);
        setAttr(coreBars[i], "data-level", level(pct || 0));
      }
    });
    const used = (r.rss || 0) + (r.rssc || 0);
    const avail = r.avail;
    const pct = missing(avail) ? null : (100 * used) / (used + avail);
    mem.set(pct, fmtBytes(used));
    memBar(pct);
    setText(
      mem.caption,
      `kernel ${fmtBytes(r.rss)} + workers ${fmtBytes(r.rssc)} of ${fmtBytes(missing(avail) ? null : used + avail)} available`
    );
    (r.gpus || []).forEach((g, i) => {
      const card = gpuCards[i];
      if (!card || !g) return;
      const [util, memUsed, memTotal, power, temp] = g;
      card.gauge.set(util);
      card.setMem(missing(memUsed) || !memTotal ? null : (100 * memUsed) / memTotal);
      setText(card.memText, `${fmtBytes(memUsed)} / ${fmtBytes(memTotal)}`);
      setText(card.gauge.caption, `${missing(power) ? "—" : power.toFixed(0)} W · ${missing(temp) ? "—" : temp.toFixed(0)} °C`);
    });
    if (r.rate) {
      const s = r.rate.steps_per_s;
      const n = r.rate.samples_per_s;
      setText(
        throughput,
        ` · ${r.rate.steps.toLocaleString("en-US")} steps` +
          (missing(s) ? "" : ` · ${fmtNum(s)} steps/s`) +
          (missing(n) ? "" : ` · ${fmtNum(n)} samples/s`)
      );
    }
    if (r.step) showStep(r.step);
  }

  function showStep(step) {
    const total = Object.values(step.phases).reduce((a, b) => a + (b || 0), 0);
    setText(stepText, `step ${step.n.toLocaleString("en-US")}: ${fmtSeconds(step.wall)}`);
    for (const [phase, seg] of Object.entries(segments)) {
      const share = total > 0 ? (100 * (step.phases[phase] || 0)) / total : 0;
      setStyle(seg, "width", `${share.toFixed(1)}%`);
      setText(legendItems[phase], `${phase} ${share.toFixed(0)}%`);
    }
  }

  // ---------------------------------------------------------- playback clock
  // Row `r` is shown at browser time r.t + offset: offset is the smallest delay
  // seen between a row's sampling and its arrival, plus one push period and a margin.
  let queue = [];
  let lastSeq = -1;
  let bestLag = Infinity;
  let nextFrame = 0;
  let plotPending = []; // rows that arrived while the dashboard was scrolled out of sight
  let visible = true;
  const now = () => performance.now() / 1000;

  function onFrame() {
    const frame = model.get("frame");
    if (!frame || frame.seq === lastSeq || !frame.rows) return;
    lastSeq = frame.seq;
    if (!frame.rows.length) return;
    const lag = now() - frame.rows[frame.rows.length - 1].t;
    bestLag = Math.min(bestLag, lag);
    queue.push(...frame.rows);
  }

  function tick() {
    if (!queue.length) return;
    const offset = bestLag + meta.delay;
    const t = now();
    if (t - (queue[0].t + offset) > MAX_BEHIND) {
      bestLag = t - queue[queue.length - 1].t - meta.delay; // resynchronise: show the newest now
    }
    if (t < nextFrame) return;
    let due = 0;
    while (due < queue.length && queue[due].t + bestLag + meta.delay <= t) due++;
    if (!due) return;
    // Due at most once per FRAME_PERIOD on average, never two frames in a row after a pause.
    nextFrame = Math.max(nextFrame + FRAME_PERIOD, t - FRAME_PERIOD);
    const rows = queue.splice(0, due);
    if (!visible) {
      plotPending.push(...rows); // nothing to see: no redraw; the timelines get them all when back in view
      if (plotPending.length > meta.rollover) plotPending = plotPending.slice(-meta.rollover);
      return;
    }
    if (plotPending.length) {
      rows.unshift(...plotPending);
      plotPending = [];
    }
    showGauges(rows[rows.length - 1]);
    streamPlot(rows);
  }

  const observer = window.IntersectionObserver
    ? new IntersectionObserver((entries) => {
        visible = entries[entries.length - 1].isIntersecting;
      })
    : null;
  if (observer) observer.observe(root);

  model.on("change:frame", onFrame);
  const onDone = () => {
    if (model.get("done")) {
      status.textContent = "finishing";
      dot.dataset.state = "done";
    }
  };
  model.on("change:done", onDone);
  onFrame();
  onDone();
  const timer = setInterval(tick, TICK_MS);

  return () => {
    disposed = true;
    clearInterval(timer);
    if (observer) observer.disconnect();
    model.off("change:frame", onFrame);
    model.off("change:done", onDone);
    for (const panel of panels) {
      if (panel.views) panel.views.clear();
      if (panel.doc) {
        const docs = window.Bokeh && window.Bokeh.documents;
        const i = docs ? docs.indexOf(panel.doc) : -1;
        if (i >= 0) docs.splice(i, 1);
        panel.doc.clear();
      }
    }
  };
}

export default { render };
