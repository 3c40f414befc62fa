// jupyter-perf live dashboard (anywidget ESM, no build step).
//
// The kernel pushes a `frame` twice a second, each carrying the samples taken
// since the last one. This view plays them back at their own sampling
// cadence, a fixed delay behind, so the gauges and the timelines move at the
// sampling rate while the browser gets one small message per push. The
// timelines are strip charts drawn here on canvases; each keeps the last
// `rollover` points per line, so a long run stays light.

const GiB = 2 ** 30;
const MiB = 2 ** 20;
const MAX_BEHIND = 1.5; // s: a view this late (hidden tab, stalled kernel) catches up at once
// Each redraw costs CPU on the machine the kernel runs on, mostly per frame whatever changed
// (committing the frame, software compositing: ≈ 5 ms a frame in JupyterLab on the 2-core
// development VM). Gauges and timelines redraw together, in one frame, once per FRAME_MS when
// samples are due: ≈ 6.7 redraws a second, some showing two samples at the default 10 Hz sampling.
const FRAME_MS = 150;
// Seconds between two updates of the text in the page (elapsed time, throughput, the step): text
// changed in a JupyterLab page costs a layout and a re-raster around it, ≈ 10 ms a time here.
const TEXT_PERIOD = 1;
const MIN_LABEL_GAP = 44; // px between two step-marker labels: closer ones are left out
const AXIS_WIDTH = 48; // px left of each plot for the y labels (the panel titles line up with it)

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
const clampPct = (pct) => Math.max(0, Math.min(100, pct));

// A colour swatch and its label; returns the label.
function legendItem(parent, color, label) {
  const item = node("span", "jpp-legend-item", parent);
  node("span", "jpp-swatch", item).style.background = color;
  return node("span", "", item, label);
}

// ------------------------------------------------------------------- gauges
// A gauge card: its title in HTML, everything that moves on one canvas: a half-circle arc filled to
// a percentage with the value in it, then bars and caption lines. Changing text in the page costs
// the browser a layout and a software raster of the text around it (measured: numbers updated with
// every frame doubled the dashboard's CPU); a canvas redraw is a bitmap swap.

const LEVEL_COLORS = { ok: "#4c78a8", warm: "#f58518", hot: "#e45756" };
const ARC = { height: 76, radius: 52, stroke: 11 }; // css px
const ROW_HEIGHT = { line: 15, bar: 11, cores: 26 };

function gaugeCard(parent, title, rows, style) {
  const card = node("div", "jpp-card", parent);
  node("div", "jpp-card-title", card, title);
  const canvas = node("canvas", "jpp-gauge", card);
  const height = ARC.height + rows.reduce((h, kind) => h + ROW_HEIGHT[kind], 0);
  canvas.style.height = `${height}px`;
  let width = 0;
  let last = null;

  // values: {pct, value (the arc's text), rows: one entry per row kind (bar: a percent, line: a
  // text, cores: percents)}
  function draw(values) {
    last = values;
    if (!width) return;
    const ctx = fitCanvas(canvas, width, height);
    const cx = width / 2, cy = ARC.radius + ARC.stroke / 2 + 4;
    ctx.lineWidth = ARC.stroke;
    ctx.strokeStyle = style.track;
    ctx.beginPath();
    ctx.arc(cx, cy, ARC.radius, Math.PI, 2 * Math.PI);
    ctx.stroke();
    if (!missing(values.pct)) {
      const p = clampPct(values.pct);
      ctx.strokeStyle = LEVEL_COLORS[level(p)];
      ctx.beginPath();
      ctx.arc(cx, cy, ARC.radius, Math.PI, Math.PI * (1 + p / 100));
      ctx.stroke();
    }
    ctx.fillStyle = style.value;
    ctx.font = style.valueFont;
    ctx.textAlign = "center";
    ctx.textBaseline = "alphabetic";
    ctx.fillText(values.value, cx, cy - 2);
    let y = ARC.height;
    rows.forEach((kind, i) => {
      const v = values.rows[i];
      if (kind === "line") {
        ctx.fillStyle = style.text;
        ctx.font = style.font;
        ctx.textAlign = "left";
        ctx.textBaseline = "top";
        ctx.fillText(fitText(ctx, v, width), 0, y + 1);
      } else if (kind === "bar") {
        fillLevel(ctx, 0, y + 2, width, 6, v, false);
      } else {
        const n = Math.max(1, v.length);
        const w = Math.min(14, (width - (n - 1)) / n);
        v.forEach((pct, k) => fillLevel(ctx, k * (w + 1), y + 2, w, 22, pct, true));
      }
      y += ROW_HEIGHT[kind];
    });
  }

  // A track filled to `pct` in the level's colour: from the left, or from the bottom (`upward`).
  function fillLevel(ctx, x, y, w, h, pct, upward) {
    ctx.fillStyle = style.track;
    ctx.fillRect(x, y, w, h);
    if (missing(pct)) return;
    const p = clampPct(pct) / 100;
    ctx.fillStyle = LEVEL_COLORS[level(100 * p)];
    if (upward) ctx.fillRect(x, y + h * (1 - p), w, h * p);
    else ctx.fillRect(x, y, w * p, h);
  }

  return {
    canvas,
    draw,
    resize(w) {
      width = w;
      if (last) draw(last);
    },
  };
}

// The canvas sized for the device's pixels, cleared, drawing in css px.
function fitCanvas(canvas, width, height) {
  const dpr = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(width * dpr)) canvas.width = Math.round(width * dpr);
  if (canvas.height !== Math.round(height * dpr)) canvas.height = Math.round(height * dpr);
  const ctx = canvas.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return ctx;
}

function fitText(ctx, text, width) {
  if (ctx.measureText(text).width <= width) return text;
  let n = text.length;
  while (n > 1 && ctx.measureText(`${text.slice(0, n)}…`).width > width) n--;
  return `${text.slice(0, n)}…`;
}

// ----------------------------------------------------------------- timelines
// A strip chart: lines against time on one canvas, dashed step markers, a few y ticks; the time
// axis on the bottom panel. The title and legend are HTML above it (drawn once).

function niceTicks(lo, hi, count) {
  const span = hi - lo;
  if (!(span > 0)) return { ticks: [lo], digits: 0 };
  const raw = span / count;
  const mag = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * mag).find((s) => s >= raw * (1 - 1e-9));
  const ticks = [];
  for (let v = Math.ceil(lo / step - 1e-9) * step; v <= hi + step * 1e-9; v += step) ticks.push(v);
  return { ticks, digits: Math.max(0, -Math.floor(Math.log10(step) + 1e-9)) };
}

// Fonts and colours for the canvases, from JupyterLab's theme variables where `el` is in the page.
function themeStyle(el) {
  const css = el ? getComputedStyle(el) : null;
  const v = (name, fallback) => (css && css.getPropertyValue(name).trim()) || fallback;
  const family = v("--jp-ui-font-family", "sans-serif");
  return {
    font: `11px ${family}`,
    valueFont: `600 17px ${family}`,
    axisFont: `9px ${family}`,
    value: v("--jp-ui-font-color1", "#222222"),
    text: v("--jp-ui-font-color2", "#666666"),
    track: v("--jp-layout-color3", "#e0e0e0"),
    grid: v("--jp-border-color2", "#e0e0e0"),
    mark: "rgba(136, 136, 136, 0.6)",
  };
}

function stripChart(parent, spec, rollover, markRollover, style) {
  const canvas = node("canvas", "jpp-strip", parent);
  const height = spec.time_axis ? 112 : 88;
  canvas.style.height = `${height}px`;
  const t = [];
  const cols = spec.series.map(() => []);
  const marks = []; // [t, step]
  let width = 0;

  function push(rows) {
    for (const r of rows) {
      t.push(r.t);
      spec.series.forEach((s, i) => cols[i].push(missing(r.p[s.column]) ? NaN : r.p[s.column]));
      for (const m of r.marks || []) marks.push(m);
    }
    if (t.length > rollover) {
      const extra = t.length - rollover;
      t.splice(0, extra);
      for (const c of cols) c.splice(0, extra);
    }
    if (marks.length > markRollover) marks.splice(0, marks.length - markRollover);
  }

  function yRange() {
    if (spec.y.max !== undefined) return [spec.y.min, spec.y.max];
    let top = 0;
    for (const c of cols) for (const v of c) if (v > top) top = v;
    return [spec.y.min, top > 0 ? top * (1 + spec.y.padding) : 1];
  }

  function draw() {
    const n = t.length;
    if (!width || !n) return;
    const ctx = fitCanvas(canvas, width, height);
    const bottom = spec.time_axis ? 26 : 4;
    const x0 = AXIS_WIDTH, x1 = width - 8, y0 = 5, y1 = height - bottom;
    const t0 = t[0], t1 = n > 1 ? t[n - 1] : t0 + 1;
    const [lo, hi] = yRange();
    const X = (v) => x0 + ((v - t0) / (t1 - t0)) * (x1 - x0);
    const Y = (v) => y1 - ((v - lo) / (hi - lo)) * (y1 - y0);
    ctx.font = style.axisFont;
    ctx.lineWidth = 1;
    // y ticks and their grid lines
    const yt = niceTicks(lo, hi, 3);
    ctx.fillStyle = style.text;
    ctx.strokeStyle = style.grid;
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    ctx.beginPath();
    for (const v of yt.ticks) {
      const y = Math.round(Y(v)) + 0.5;
      ctx.moveTo(x0, y);
      ctx.lineTo(x1, y);
      ctx.fillText(v.toFixed(yt.digits), x0 - 5, y);
    }
    ctx.stroke();
    // the time axis
    if (spec.time_axis) {
      const xt = niceTicks(t0, t1, Math.max(2, Math.floor((x1 - x0) / 90)));
      ctx.textAlign = "center";
      ctx.textBaseline = "top";
      for (const v of xt.ticks) ctx.fillText(v.toFixed(xt.digits), X(v), y1 + 3);
      ctx.fillText("seconds", (x0 + x1) / 2, y1 + 14);
    }
    // step markers
    ctx.save();
    ctx.setLineDash([4, 3]);
    ctx.strokeStyle = style.mark;
    ctx.textAlign = "right";
    ctx.textBaseline = "top";
    ctx.beginPath();
    let labelled = -Infinity;
    for (const [mt, step] of marks) {
      if (mt < t0 || mt > t1) continue;
      const x = Math.round(X(mt)) + 0.5;
      ctx.moveTo(x, y0);
      ctx.lineTo(x, y1);
      if (spec.step_labels && x - labelled >= MIN_LABEL_GAP) {
        ctx.fillText(`step ${step.toLocaleString("en-US")}`, x - 2, y0);
        labelled = x;
      }
    }
    ctx.stroke();
    ctx.restore();
    // the lines, broken where a value is missing
    ctx.lineWidth = 1.5;
    ctx.lineJoin = "round";
    spec.series.forEach((s, i) => {
      const c = cols[i];
      ctx.strokeStyle = s.color;
      ctx.beginPath();
      let pen = false;
      for (let k = 0; k < n; k++) {
        if (Number.isNaN(c[k])) {
          pen = false;
          continue;
        }
        const x = X(t[k]), y = Y(Math.min(hi, Math.max(lo, c[k])));
        if (pen) ctx.lineTo(x, y);
        else ctx.moveTo(x, y);
        pen = true;
      }
      ctx.stroke();
    });
  }

  return {
    push,
    draw,
    resize(w) {
      width = w;
    },
  };
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
  const style = themeStyle(null); // the theme's colours once the view is in the page (first resize)
  const gauges = node("div", "jpp-gauges", root);
  gauges.dataset.jpp = "gauges";
  const cpu = gaugeCard(gauges, `CPU · ${meta.cores} cores`, ["line", "cores"], style);
  const mem = gaugeCard(gauges, "Memory · kernel + DataLoader workers", ["bar", "line", "line"], style);
  const gpuCards = meta.gpus.map((g) => gaugeCard(gauges, `GPU${g.index} · ${g.name}`, ["bar", "line", "line"], style));
  const cards = [cpu, mem, ...gpuCards];
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
    legendItems[phase] = legendItem(phaseLegend, color, phase);
  }

  // ------------------------------------------- ranks (a cell that launched them)
  const ranksBox = node("div", "jpp-ranks", root);
  ranksBox.dataset.jpp = "ranks";
  const rankLines = [];
  let latestRanks = null;

  function showRanks(ranks) {
    while (rankLines.length < ranks.length) {
      const line = node("div", "jpp-rank", ranksBox);
      rankLines.push({ line, label: node("span", "jpp-rank-label", line), bar: node("span", "jpp-rank-bar", line),
                       text: node("span", "jpp-caption", line) });
    }
    rankLines.forEach((view, i) => {
      const r = ranks[i];
      setStyle(view.line, "display", r ? "" : "none");
      if (!r) return;
      setText(view.label, r.label);
      setStyle(view.bar, "background", phaseGradient(r.phases));
      setText(view.text, `${(r.steps || 0).toLocaleString("en-US")} steps · ` +
        `${missing(r.steps_per_s) ? "—" : fmtNum(r.steps_per_s)} steps/s · ` +
        `CPU ${missing(r.cpu) ? "—" : r.cpu.toFixed(0) + "%"} · ${fmtBytes(r.rss)}` +
        (missing(r.gpu) ? "" : ` · GPU ${r.gpu.toFixed(0)}%`));
    });
  }

  // A rank's last step as one bar: each phase's share, in the phase colours.
  function phaseGradient(phases) {
    const total = Object.values(phases).reduce((a, b) => a + (b || 0), 0);
    if (!(total > 0)) return "";
    const stops = [];
    let left = 0;
    for (const [phase, color] of Object.entries(meta.phase_colors)) {
      const width = (100 * (phases[phase] || 0)) / total;
      if (width <= 0) continue;
      stops.push(`${color} ${left.toFixed(1)}% ${(left + width).toFixed(1)}%`);
      left += width;
    }
    return `linear-gradient(to right, ${stops.join(", ")})`;
  }

  // -------------------------------------------------------------- timeline
  const timeline = node("div", "jpp-timeline", root);
  timeline.dataset.jpp = "timeline";
  timeline.dataset.rows = "0";
  const charts = meta.panels.map((spec) => {
    const head = node("div", "jpp-panel-head", timeline);
    node("b", "", head, spec.title);
    node("span", "jpp-caption", head, ` ${spec.unit}`);
    for (const s of spec.series) legendItem(head, s.color, s.label);
    return stripChart(timeline, spec, meta.rollover, meta.mark_rollover, style);
  });
  // Canvas widths follow the notebook's width; read here, never during a redraw (a forced layout).
  const sized = new Map([[timeline, (w) => charts.forEach((chart) => chart.resize(w))]]);
  for (const card of cards) sized.set(card.canvas, card.resize);
  const resizer = window.ResizeObserver
    ? new ResizeObserver((entries) => {
        if (root.isConnected) Object.assign(style, themeStyle(root));
        for (const entry of entries) sized.get(entry.target)(entry.contentRect.width);
        if (visible) for (const chart of charts) chart.draw();
      })
    : null;
  for (const [target, resize] of sized) {
    if (resizer) resizer.observe(target);
    else resize(target.clientWidth);
  }

  function plot(rows) {
    for (const chart of charts) chart.push(rows);
    timeline.dataset.rows = String(Number(timeline.dataset.rows) + rows.length);
  }

  // The gauges' canvases are redrawn with every frame; the text in the page (elapsed time,
  // throughput, the step's phases), at most every TEXT_PERIOD: it stays readable, and text costs a layout.
  function showGauges(r) {
    cpu.draw({
      pct: r.cpu,
      value: missing(r.cpu) ? "—" : `${r.cpu.toFixed(0)}%`,
      rows: [missing(r.proc) ? "" : `this kernel + workers ${fmtNum(r.proc)}% of one core`, r.cores || []],
    });
    const used = (r.rss || 0) + (r.rssc || 0);
    const avail = r.avail;
    const pct = missing(avail) ? null : (100 * used) / (used + avail);
    mem.draw({
      pct,
      value: fmtBytes(used),
      rows: [pct, `kernel ${fmtBytes(r.rss)} + workers ${fmtBytes(r.rssc)}`, `of ${fmtBytes(missing(avail) ? null : used + avail)} available`],
    });
    (r.gpus || []).forEach((g, i) => {
      const card = gpuCards[i];
      if (!card || !g) return;
      const [util, memUsed, memTotal, power, temp] = g;
      card.draw({
        pct: util,
        value: missing(util) ? "—" : `${util.toFixed(0)}%`,
        rows: [
          missing(memUsed) || !memTotal ? null : (100 * memUsed) / memTotal,
          `${fmtBytes(memUsed)} / ${fmtBytes(memTotal)}`,
          `${missing(power) ? "—" : power.toFixed(0)} W · ${missing(temp) ? "—" : temp.toFixed(0)} °C`,
        ],
      });
    });
    if (r.step) showPhases(r.step);
  }

  function showNumbers(r) {
    setText(elapsed, ` · ${fmtSeconds(r.t)}`);
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
    if (latestRanks) showRanks(latestRanks);
    if (r.step) {
      const step = r.step;
      setText(stepText, `step ${step.n.toLocaleString("en-US")}: ${fmtSeconds(step.wall)}`);
      const shares = phaseShares(step);
      for (const phase of Object.keys(legendItems)) setText(legendItems[phase], `${phase} ${shares[phase].toFixed(0)}%`);
    }
  }

  function phaseShares(step) {
    const total = Object.values(step.phases).reduce((a, b) => a + (b || 0), 0);
    const shares = {};
    for (const phase of Object.keys(segments)) shares[phase] = total > 0 ? (100 * (step.phases[phase] || 0)) / total : 0;
    return shares;
  }

  function showPhases(step) {
    const shares = phaseShares(step);
    let left = 0;
    for (const [phase, seg] of Object.entries(segments)) {
      setStyle(seg, "transform", `translateX(${left.toFixed(1)}%) scaleX(${(shares[phase] / 100).toFixed(3)})`);
      left += shares[phase];
    }
  }

  // ---------------------------------------------------------- playback clock
  // Row `r` is shown at browser time r.t + offset: offset is the smallest delay
  // seen between a row's sampling and its arrival, plus one push period and a margin.
  let queue = [];
  let lastSeq = -1;
  let bestLag = Infinity;
  let visible = true;
  let stale = false; // rows arrived while the dashboard was scrolled out of sight: redraw when back
  let nextText = 0;
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

  // One redraw of everything per FRAME_MS, with the rows that are due.
  function tick() {
    if (!queue.length) return;
    const t = now();
    if (t - (queue[0].t + bestLag + meta.delay) > MAX_BEHIND) {
      bestLag = t - queue[queue.length - 1].t - meta.delay; // resynchronise: show the newest now
    }
    let due = 0;
    while (due < queue.length && queue[due].t + bestLag + meta.delay <= t) due++;
    if (!due) return;
    const rows = queue.splice(0, due);
    for (const row of rows) if (row.ranks) latestRanks = row.ranks;
    plot(rows);
    if (!visible) {
      stale = true; // nothing to see: no redraw
      return;
    }
    stale = false;
    const last = rows[rows.length - 1];
    showGauges(last);
    if (t >= nextText) {
      nextText = t + TEXT_PERIOD;
      showNumbers(last);
    }
    for (const chart of charts) chart.draw();
  }

  const observer = window.IntersectionObserver
    ? new IntersectionObserver((entries) => {
        visible = entries[entries.length - 1].isIntersecting;
        if (visible && stale) for (const chart of charts) chart.draw();
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
  const timer = setInterval(tick, FRAME_MS);

  return () => {
    clearInterval(timer);
    if (observer) observer.disconnect();
    if (resizer) resizer.disconnect();
    model.off("change:frame", onFrame);
    model.off("change:done", onDone);
  };
}

export default { render };
