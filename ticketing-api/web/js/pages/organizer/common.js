// Shared bits of the organizer pages: the section tabs, money in major/minor units, times
// for <input type="datetime-local">, and a venue drawing preview (SVG in an <img>, which
// never runs scripts or fetches anything, with the seats drawn on top).

import { h } from '../../ui.js';

export const CURRENCIES = ['EUR', 'NOK', 'SEK', 'DKK', 'GBP', 'USD', 'CHF', 'PLN', 'JPY'];

/** Sub-navigation of the organizer area; `here` is the current tab's path. */
export function organizerTabs(here) {
  const tabs = [
    ['/organizer', 'My events'],
    ['/organizer/events/new', 'New event'],
    ['/organizer/venues', 'Venues'],
    ['/organizer/venues/new', 'New venue'],
  ];
  return tabNav('Organizer', tabs, here);
}

export function tabNav(label, tabs, here) {
  return h('nav', { class: 'tabs', 'aria-label': label },
    h('ul', { class: 'tabs__list' }, tabs.map(([path, text]) => h('li', {},
      h('a', { href: path, dataset: { link: '' }, 'aria-current': path === here ? 'page' : null }, text)))));
}

/** How many decimals a currency's minor unit has (EUR 2, JPY 0). */
export function decimals(currency) {
  try {
    return new Intl.NumberFormat('en', { style: 'currency', currency }).resolvedOptions().maximumFractionDigits ?? 2;
  } catch {
    return 2;
  }
}

/** "40.50" in `currency` → 4050 minor units; NaN when not a plain non-negative amount. */
export function toMinor(text, currency) {
  const value = String(text).trim().replace(',', '.');
  if (!/^\d+(\.\d+)?$/.test(value)) return NaN;
  const digits = decimals(currency);
  const [whole, frac = ''] = value.split('.');
  if (frac.length > digits) return NaN;
  return Number(whole) * 10 ** digits + Number((frac + '0'.repeat(digits)).slice(0, digits) || 0);
}

/** A Date → the value of a datetime-local input, in the browser's time zone. */
export function toLocalInput(date) {
  const pad = (n) => String(n).padStart(2, '0');
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}T${pad(date.getHours())}:${pad(date.getMinutes())}`;
}

/** A datetime-local value → RFC 3339 (UTC), or null. */
export function fromLocalInput(value) {
  if (!value) return null;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? null : date.toISOString();
}

/** The viewBox of an SVG document's text: [x, y, w, h]. Parsed inert (DOMParser runs nothing). */
export function viewBoxOf(text) {
  const root = new DOMParser().parseFromString(text, 'image/svg+xml').documentElement;
  if (!root || root.nodeName !== 'svg') return null;
  let box = (root.getAttribute('viewBox') || '').trim().split(/[\s,]+/).map(Number);
  if (box.length !== 4 || box.some((v) => !Number.isFinite(v)) || box[2] <= 0 || box[3] <= 0) {
    box = [0, 0, parseFloat(root.getAttribute('width')) || 1000, parseFloat(root.getAttribute('height')) || 1000];
  }
  return box;
}

/**
 * A drawing with its seats: `src` (an image URL of the SVG), `box` its viewBox, `seats`
 * [{label, x, y}]. The seats are an SVG overlay built element by element (no markup strings).
 */
export function svgPreview({ src, box, seats, label }) {
  const [x, y, w, hgt] = box;
  const r = Math.max(w, hgt) / 160;
  const overlay = h('svg', { class: 'venue-preview__seats', viewBox: `${x} ${y} ${w} ${hgt}`, preserveAspectRatio: 'xMidYMid meet', 'aria-hidden': 'true' });
  for (const seat of seats.slice(0, 20000)) {
    overlay.appendChild(h('circle', { ns: 'svg', cx: seat.x, cy: seat.y, r, class: 'venue-preview__seat' }));
  }
  return h('figure', { class: 'venue-preview', style: `aspect-ratio:${w} / ${hgt}` },
    h('img', { src, alt: label || 'The venue drawing', class: 'venue-preview__img' }),
    overlay);
}

/** Grid sections [{name, rows, seats_per_row}] drawn on a canvas, scaled to fit. */
export function drawGrid(canvas, sections) {
  const width = canvas.clientWidth || 600;
  const valid = sections.filter((s) => s.rows > 0 && s.seats_per_row > 0);
  const widest = Math.max(1, ...valid.map((s) => s.seats_per_row));
  const gap = 14;
  const labelH = 16;
  const cell = Math.max(1.5, Math.min(14, (width - 16) / widest));
  const heights = valid.map((s) => s.rows * cell);
  const height = Math.max(80, heights.reduce((a, b) => a + b + gap + labelH, 8) + 28);
  const ratio = window.devicePixelRatio || 1;
  canvas.width = Math.round(width * ratio);
  canvas.height = Math.round(Math.min(height, 4000) * ratio);
  canvas.style.height = `${Math.min(height, 4000)}px`;
  const c = canvas.getContext('2d');
  c.setTransform(ratio, 0, 0, ratio, 0, 0);
  const style = getComputedStyle(document.documentElement);
  const fg = style.getPropertyValue('--muted').trim() || '#555';
  const seat = style.getPropertyValue('--seat-free').trim() || '#2e7d4f';
  const stage = style.getPropertyValue('--border-strong').trim() || '#888';
  c.clearRect(0, 0, width, height);
  c.fillStyle = stage;
  c.fillRect(width * 0.25, 4, width * 0.5, 14);
  c.fillStyle = fg;
  c.font = '11px system-ui, sans-serif';
  let top = 28;
  valid.forEach((s) => {
    const w = s.seats_per_row * cell;
    const left = (width - w) / 2;
    c.fillStyle = fg;
    c.fillText(`${s.name || '?'} · ${s.rows} × ${s.seats_per_row}`, left, top + 11);
    top += labelH;
    c.fillStyle = seat;
    if (cell >= 4 && s.rows * s.seats_per_row <= 40000) {
      const size = Math.max(1, cell - Math.max(1, cell * 0.25));
      for (let r = 0; r < s.rows; r += 1) {
        for (let k = 0; k < s.seats_per_row; k += 1) c.fillRect(left + k * cell, top + r * cell, size, size);
      }
    } else {
      c.fillRect(left, top, w, s.rows * cell);
    }
    top += s.rows * cell + gap;
  });
}
