/**
 * How a number reads wherever a person sees one in the browser: the live
 * dashboard and the JupyterLab extension.
 *
 * The twin of the kernel's `jupyter_perf/units.py`, with the same rules, so a
 * size reads the same in the live view, the status bar and the summary: sizes
 * are binary (KiB, MiB, GiB: what `free`, `nvidia-smi` and torch's allocator
 * report) with three significant digits below 100 of a unit and whole numbers
 * above; durations step from µs to ms, s, min and h the same way. Only what
 * the browser shows is here (no signed sizes, byte rates, FLOP/s or shares). A value
 * that was not observed reads '—', never 0. (Exact ties, x.5, round up here
 * and to even in Python: a last-digit difference no reading depends on.)
 */

export const MISSING = '—';

const SIZE_UNITS = ['B', 'KiB', 'MiB', 'GiB', 'TiB', 'PiB'];
const RATE_PREFIXES: [number, string][] = [
  [1e12, 'T'],
  [1e9, 'G'],
  [1e6, 'M'],
  [1e3, 'k']
];

/** A number that may be absent: null and undefined from the wire, NaN and ±∞ from arithmetic. */
export type Maybe = number | null | undefined;

export function missing(value: Maybe): value is null | undefined {
  return value === null || value === undefined || !Number.isFinite(value);
}

/** Three significant digits below 100, a whole number from 100 on (`0.0123`, `4.56`, `78.9`, `1,234`). */
export function significant(value: number): string {
  if (value === 0) {
    return '0';
  }
  const magnitude = Math.abs(value);
  if (magnitude >= 100) {
    return Math.round(value).toLocaleString('en-US');
  }
  return value.toFixed(Math.max(0, 2 - Math.floor(Math.log10(magnitude))));
}

/** `512 B`, `6.00 MiB`, `1.90 GiB`, `150 MiB`. */
export function size(bytes: Maybe): string {
  if (missing(bytes)) {
    return MISSING;
  }
  const magnitude = Math.abs(bytes);
  const top = SIZE_UNITS.length - 1;
  let exponent =
    magnitude < 1024 ? 0 : Math.min(Math.floor(Math.log2(magnitude) / 10), top);
  let scaled = magnitude / 1024 ** exponent;
  if (scaled >= 1023.5 && exponent < top) {
    // 1023.9 KiB would round to 1,024 KiB: say 1.00 MiB
    exponent += 1;
    scaled = Math.max(1, scaled / 1024);
  }
  const text = exponent === 0 ? magnitude.toFixed(0) : significant(scaled);
  return `${bytes < 0 ? '−' : ''}${text} ${SIZE_UNITS[exponent]}`;
}

/** The binary unit an axis of sizes up to `peak` bytes is drawn in: `[scale, label]` (`units.size_unit`). */
export function sizeUnit(peak: number): [number, string] {
  const exponent =
    peak < 1024
      ? 0
      : Math.min(Math.floor(Math.log2(peak) / 10), SIZE_UNITS.length - 1);
  return [1024 ** exponent, SIZE_UNITS[exponent]];
}

/** `3.00 µs`, `850 µs`, `4.20 ms`, `1.25 s`, `2 min 5 s`, `1 h 2 min`. */
export function duration(seconds: Maybe): string {
  if (missing(seconds)) {
    return MISSING;
  }
  if (seconds < 0) {
    return `−${duration(-seconds)}`;
  }
  if (seconds === 0) {
    return '0 s';
  }
  if (seconds < 1e-3) {
    return `${significant(seconds * 1e6)} µs`;
  }
  if (seconds < 1) {
    return `${significant(seconds * 1e3)} ms`;
  }
  if (seconds < 60) {
    return `${significant(seconds)} s`;
  }
  const whole = Math.round(seconds);
  const minutes = Math.floor(whole / 60);
  const rest = whole % 60;
  if (minutes < 60) {
    return rest ? `${minutes} min ${rest} s` : `${minutes} min`;
  }
  const hours = Math.floor(minutes / 60);
  const left = minutes % 60;
  return left ? `${hours} h ${left} min` : `${hours} h`;
}

/** A count per second with a decimal prefix: `45.6 steps/s`, `1.23k samples/s`. */
export function rate(perSecond: Maybe, unit: string): string {
  return missing(perSecond) ? MISSING : `${number(perSecond)} ${unit}/s`;
}

/** A count or rate without its unit, with a decimal prefix: `68.6`, `1.23k`, `4.56M`. */
export function number(value: Maybe): string {
  if (missing(value)) {
    return MISSING;
  }
  const [scale, prefix] = RATE_PREFIXES.find(([s]) => Math.abs(value) >= s) ?? [
    1,
    ''
  ];
  return `${significant(value / scale)}${prefix}`;
}

/** A count with thousands separators (`12,345`); a fraction with three significant digits. */
export function count(n: Maybe): string {
  if (missing(n)) {
    return MISSING;
  }
  return Number.isInteger(n) ? n.toLocaleString('en-US') : significant(n);
}

/** A speedup or ratio: `×1.46`, `×0.71`, `×12`. */
export function ratio(x: Maybe): string {
  if (missing(x)) {
    return MISSING;
  }
  return x < 10 ? `×${x.toFixed(2)}` : `×${x.toFixed(0)}`;
}
