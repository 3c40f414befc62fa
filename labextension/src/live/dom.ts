/**
 * Small DOM and canvas helpers of the live dashboard. Every write to the page
 * costs the browser a style and paint pass, so the setters write only what
 * changed.
 */

export function node<K extends keyof HTMLElementTagNameMap>(
  tag: K,
  cls: string,
  parent: Element | null,
  text?: string
): HTMLElementTagNameMap[K] {
  const e = document.createElement(tag);
  if (cls) {
    e.className = cls;
  }
  if (text !== undefined) {
    e.textContent = text;
  }
  parent?.appendChild(e);
  return e;
}

export function setText(e: Element, text: string): void {
  if (e.textContent !== text) {
    e.textContent = text;
  }
}

export function setTransform(e: HTMLElement, value: string): void {
  if (e.style.transform !== value) {
    e.style.transform = value;
  }
}

/** A colour swatch and its label; returns the label. */
export function legendItem(
  parent: Element,
  color: string,
  label: string
): HTMLSpanElement {
  const item = node('span', 'jpp-legend-item', parent);
  node('span', 'jpp-swatch', item).style.background = color;
  return node('span', '', item, label);
}

/** Fonts and colours of the canvases: JupyterLab's theme variables where the view is in the page. */
export interface ITheme {
  font: string;
  valueFont: string;
  axisFont: string;
  value: string;
  text: string;
  track: string;
  grid: string;
  mark: string;
}

export function themeStyle(el: Element | null): ITheme {
  const css = el ? getComputedStyle(el) : null;
  const v = (name: string, fallback: string) =>
    css?.getPropertyValue(name).trim() || fallback;
  const family = v('--jp-ui-font-family', 'sans-serif');
  return {
    font: `11px ${family}`,
    valueFont: `600 17px ${family}`,
    axisFont: `9px ${family}`,
    value: v('--jp-ui-font-color1', '#222222'),
    text: v('--jp-ui-font-color2', '#666666'),
    track: v('--jp-layout-color3', '#e0e0e0'),
    grid: v('--jp-border-color2', '#e0e0e0'),
    mark: 'rgba(136, 136, 136, 0.6)'
  };
}

/** The canvas sized for the device's pixels, cleared, drawing in css px. */
export function fitCanvas(
  canvas: HTMLCanvasElement,
  width: number,
  height: number
): CanvasRenderingContext2D {
  const dpr = window.devicePixelRatio || 1;
  if (canvas.width !== Math.round(width * dpr)) {
    canvas.width = Math.round(width * dpr);
  }
  if (canvas.height !== Math.round(height * dpr)) {
    canvas.height = Math.round(height * dpr);
  }
  const ctx = canvas.getContext('2d') as CanvasRenderingContext2D;
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);
  return ctx;
}

/** `text`, cut with an ellipsis to fit `width` px in the context's font. */
export function fitText(
  ctx: CanvasRenderingContext2D,
  text: string,
  width: number
): string {
  if (ctx.measureText(text).width <= width) {
    return text;
  }
  let n = text.length;
  while (n > 1 && ctx.measureText(`${text.slice(0, n)}…`).width > width) {
    n--;
  }
  return `${text.slice(0, n)}…`;
}
