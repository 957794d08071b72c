// The live seat map: every seat of an event drawn in ONE <canvas> (a 100,000-seat stadium is
// one element, not 100,000 buttons), with one click handler that finds the seat under the
// pointer through a bucket grid. Grid venues are drawn from rows and seats; SVG venues draw the
// organizer's drawing (loaded as an <img>, so it can never run script) under the seats, placed
// at their x/y in the drawing's coordinates.
//
// Keyboard: the canvas is focusable; arrow keys move a cursor from seat to seat, Enter/Space
// select, and the cursor's seat is announced ("Seat A-3-7, free, €40"). Beside it, a row
// picker lists one row's seats as real buttons (aria-pressed), the accessible fallback.
//
// The layout is fetched once (?format=compact); the states come from ?format=state, polled
// every ~2 s while the page is visible.

import { h, mount, money } from './ui.js';

const STATE_WORD = { f: 'free', h: 'held', s: 'sold' };
const POLL_MS = 2000;
const MAX_ROW_BUTTONS = 400;

function parseLabel(label) {
  const parts = label.split('-');
  const section = parts[0] || label;
  if (parts.length === 3 && /^\d+$/.test(parts[1]) && /^\d+$/.test(parts[2])) {
    return { section, row: parts[1], seat: Number(parts[2]) };
  }
  return { section, row: '', seat: 0 };
}

function cssVar(el, name) {
  return getComputedStyle(el).getPropertyValue(name).trim() || '#888';
}

export class SeatMap {
  /**
   * options: eventId, venueId, api, classes (event.classes: name, price, currency),
   * maxSelect, onSelect(selectionLabels), onStates(countsPerClass), signal
   */
  constructor(options) {
    this.o = options;
    this.selected = new Set(); // seat indexes chosen by the fan (not yet held)
    this.mine = new Set(); // seat indexes of the fan's live hold
    this.flashing = new Map(); // idx -> until (ms)
    this.cursor = -1;
    this.zoom = 1;
    this.timer = null;
    this.visible = () => this.poll();
    this.el = h('section', { class: 'seatmap', 'aria-labelledby': 'seatmap-heading', 'aria-busy': 'true' },
      h('h2', { id: 'seatmap-heading' }, 'Seat map'),
      h('p', { class: 'loading', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), 'Loading the seat map…'));
    this.el.seatMap = this; // for tests and debugging: document.querySelector('.seatmap').seatMap
  }

  async load() {
    const { api, eventId, venueId, signal } = this.o;
    const [data, svg] = await Promise.all([
      api.get(`/api/events/${eventId}/seats?format=compact`, { signal }),
      this.loadSvg(venueId),
    ]);
    this.data = data;
    this.n = data.ids.length;
    this.state = data.state.split('');
    this.index = new Map(data.ids.map((id, i) => [id, i]));
    this.byLabel = new Map(data.labels.map((label, i) => [label, i]));
    this.svg = svg;
    this.priceOf = data.classes.map((name) => this.o.classes.find((c) => c.name === name));
    this.groupRows();
    this.build(); // the element is in the page by now, so the layout can measure it
    this.layout();
    this.draw();
    this.el.removeAttribute('aria-busy');
    this.emitCounts();
    this.startPolling();
    return this;
  }

  async loadSvg(venueId) {
    if (!venueId) return null;
    let response;
    try {
      response = await fetch(`/api/venues/${venueId}/layout.svg`, { signal: this.o.signal });
    } catch {
      return null;
    }
    if (!response.ok) return null; // a grid venue
    const text = await response.text();
    const doc = new DOMParser().parseFromString(text, 'image/svg+xml');
    const root = doc.documentElement;
    let box = (root.getAttribute('viewBox') || '').trim().split(/[\s,]+/).map(Number);
    if (box.length !== 4 || box.some((v) => !Number.isFinite(v)) || box[2] <= 0 || box[3] <= 0) {
      box = [0, 0, parseFloat(root.getAttribute('width')) || 1000, parseFloat(root.getAttribute('height')) || 1000];
    }
    const url = URL.createObjectURL(new Blob([text], { type: 'image/svg+xml' }));
    const image = new Image();
    image.alt = '';
    await new Promise((resolve) => {
      image.onload = resolve;
      image.onerror = resolve;
      image.src = url;
    });
    return { image, box, url };
  }

  // Sections and rows, in the venue's order, for the row picker and keyboard moves.
  groupRows() {
    const sections = new Map();
    this.data.labels.forEach((label, i) => {
      const { section, row, seat } = parseLabel(label);
      if (!sections.has(section)) sections.set(section, new Map());
      const rows = sections.get(section);
      if (!rows.has(row)) rows.set(row, []);
      rows.get(row).push([seat, i]);
    });
    for (const rows of sections.values()) {
      for (const [key, seats] of rows) rows.set(key, seats.sort((a, b) => a[0] - b[0]).map(([, i]) => i));
    }
    this.sections = sections;
  }

  label(i) {
    return this.data.labels[i];
  }

  stateOf(labelOrIdx) {
    const i = typeof labelOrIdx === 'number' ? labelOrIdx : this.byLabel.get(labelOrIdx);
    if (i === undefined) return null;
    if (this.mine.has(i)) return 'yours';
    return STATE_WORD[this.state[i]];
  }

  describe(i) {
    const cls = this.priceOf[this.data.class[i]];
    const price = cls ? money(cls.price, cls.currency) : '';
    const state = this.mine.has(i) ? 'held for you' : this.selected.has(i) ? 'selected' : STATE_WORD[this.state[i]];
    return `Seat ${this.label(i)}, ${state}${price ? `, ${price}` : ''}${cls ? `, ${cls.name}` : ''}`;
  }

  // --- DOM -------------------------------------------------------------------------------

  build() {
    this.canvas = h('canvas', {
      tabindex: '0',
      role: 'application',
      'aria-roledescription': 'seat map',
      'aria-label': `Seat map, ${this.n} seats. Arrow keys move between seats; Enter or Space selects.`,
      'aria-describedby': 'seatmap-cursor',
    });
    this.viewport = h('div', { class: 'seatmap__viewport' },
      this.svg ? null : h('div', { class: 'seatmap__stage', 'aria-hidden': 'true' }, 'Stage'),
      this.canvas);
    this.cursorText = h('p', { id: 'seatmap-cursor', class: 'visually-hidden', 'aria-live': 'polite' });
    const zoomOut = h('button', { type: 'button', class: 'btn btn--small', 'aria-label': 'Zoom out', on: { click: () => this.setZoom(this.zoom / 1.5) } }, '−');
    const zoomIn = h('button', { type: 'button', class: 'btn btn--small', 'aria-label': 'Zoom in', on: { click: () => this.setZoom(this.zoom * 1.5) } }, '+');
    const legend = h('ul', { class: 'legend', 'aria-label': 'Legend' },
      h('li', {}, h('span', { class: 'swatch swatch--free' }), 'Free'),
      h('li', {}, h('span', { class: 'swatch swatch--held' }), 'Held by someone'),
      h('li', {}, h('span', { class: 'swatch swatch--sold' }), 'Sold'),
      h('li', {}, h('span', { class: 'swatch swatch--mine' }), 'Your seats'));
    this.rowPicker = this.buildRowPicker();
    mount(this.el,
      h('div', { class: 'spread' }, h('h2', { id: 'seatmap-heading' }, 'Seat map'),
        h('div', { class: 'seatmap__toolbar' }, zoomOut, zoomIn)),
      legend,
      this.viewport,
      this.cursorText,
      this.rowPicker);

    this.canvas.addEventListener('click', (event) => {
      const rect = this.canvas.getBoundingClientRect();
      const i = this.hit(event.clientX - rect.left, event.clientY - rect.top);
      if (i >= 0) {
        this.cursor = i;
        this.toggle(i);
        this.showRowOf(i);
      }
    });
    this.canvas.addEventListener('mousemove', (event) => {
      const rect = this.canvas.getBoundingClientRect();
      const i = this.hit(event.clientX - rect.left, event.clientY - rect.top);
      this.canvas.title = i >= 0 ? this.describe(i) : '';
    });
    this.canvas.addEventListener('keydown', (event) => this.onKey(event));
    this.canvas.addEventListener('focus', () => {
      if (this.cursor < 0) this.cursor = this.firstFree();
      this.announce();
      this.draw();
    });
    this.canvas.addEventListener('blur', () => this.draw());
    // Re-layout when the map's width changes (rotation, window resize, the side panel moving).
    let lastWidth = 0;
    this.resizer = new ResizeObserver(() => {
      const width = this.viewport.clientWidth;
      if (Math.abs(width - lastWidth) < 2) return;
      lastWidth = width;
      this.layout();
      this.draw();
    });
    this.resizer.observe(this.viewport);
  }

  buildRowPicker() {
    const sectionSelect = h('select', { id: 'pick-section' },
      [...this.sections.keys()].map((name) => h('option', { value: name }, name)));
    const rowSelect = h('select', { id: 'pick-row' });
    this.rowList = h('ul', { class: 'seat-row', 'aria-label': 'Seats in this row' });
    const fillRows = () => {
      const rows = this.sections.get(sectionSelect.value);
      mount(rowSelect, [...rows.keys()].map((row) => h('option', { value: row }, row ? `Row ${row}` : 'All seats')));
      this.renderRow();
    };
    sectionSelect.addEventListener('change', fillRows);
    rowSelect.addEventListener('change', () => this.renderRow());
    this.sectionSelect = sectionSelect;
    this.rowSelect = rowSelect;
    const picker = h('div', { class: 'row-picker' },
      h('h3', {}, 'Choose seats by row'),
      h('div', { class: 'row-picker__controls' },
        h('div', { class: 'field' }, h('label', { for: 'pick-section' }, 'Section'), sectionSelect),
        h('div', { class: 'field' }, h('label', { for: 'pick-row' }, 'Row'), rowSelect)),
      this.rowList);
    // Fill after the selects exist.
    queueMicrotask(fillRows);
    return picker;
  }

  renderRow() {
    const rows = this.sections.get(this.sectionSelect.value);
    const seats = rows?.get(this.rowSelect.value) || [];
    const shown = seats.slice(0, MAX_ROW_BUTTONS);
    this.rowButtons = new Map();
    mount(this.rowList, shown.map((i) => {
      const { seat } = parseLabel(this.label(i));
      const button = h('button', {
        type: 'button',
        class: 'seat-btn',
        dataset: { seat: this.label(i) },
        on: { click: () => this.toggle(i) },
      }, seat ? String(seat) : this.label(i));
      this.rowButtons.set(i, button);
      this.paintButton(i);
      return h('li', {}, button);
    }), seats.length > shown.length ? h('li', { class: 'muted small' }, `…and ${seats.length - shown.length} more: use the map.`) : null);
  }

  paintButton(i) {
    const button = this.rowButtons?.get(i);
    if (!button) return;
    const state = this.mine.has(i) ? 'mine' : STATE_WORD[this.state[i]];
    button.dataset.state = state;
    button.setAttribute('aria-pressed', String(this.selected.has(i) || this.mine.has(i)));
    button.setAttribute('aria-label', this.describe(i));
    button.setAttribute('aria-disabled', String(state === 'held' || state === 'sold'));
  }

  showRowOf(i) {
    const { section, row } = parseLabel(this.label(i));
    if (!this.sections.has(section)) return;
    if (this.sectionSelect.value !== section) {
      this.sectionSelect.value = section;
      const rows = this.sections.get(section);
      mount(this.rowSelect, [...rows.keys()].map((r) => h('option', { value: r }, r ? `Row ${r}` : 'All seats')));
    }
    if (this.rowSelect.value !== row) this.rowSelect.value = row;
    this.renderRow();
  }

  // --- geometry ----------------------------------------------------------------------------

  layout() {
    const { x, y } = this.data;
    const width = Math.max(280, this.viewport.clientWidth - 2);
    let minX = Infinity; let minY = Infinity; let maxX = -Infinity; let maxY = -Infinity;
    for (let i = 0; i < this.n; i += 1) {
      if (x[i] < minX) minX = x[i];
      if (x[i] > maxX) maxX = x[i];
      if (y[i] < minY) minY = y[i];
      if (y[i] > maxY) maxY = y[i];
    }
    if (!this.n) { minX = 0; minY = 0; maxX = 1; maxY = 1; }
    this.px = new Float32Array(this.n);
    this.py = new Float32Array(this.n);
    if (this.svg) {
      const [bx, by, bw, bh] = this.svg.box;
      const scale = (width / bw) * this.zoom;
      const spacing = Math.sqrt((bw * bh) / Math.max(1, this.n)) * scale;
      this.size = Math.max(3, Math.min(14, spacing * 0.38));
      this.scale = scale;
      this.origin = [bx, by];
      this.cssWidth = Math.ceil(bw * scale);
      this.cssHeight = Math.ceil(bh * scale);
      for (let i = 0; i < this.n; i += 1) {
        this.px[i] = (x[i] - bx) * scale;
        this.py[i] = (y[i] - by) * scale;
      }
    } else {
      // One cell per seat, a gutter column for row numbers on the left, a row above every
      // section for its name; narrower sections are centred under the widest.
      const cols = maxX - minX + 1;
      const cell = Math.max(4, Math.min(26, Math.floor(width / (cols + 3)))) * this.zoom;
      this.cell = cell;
      this.size = cell * 0.42;
      this.cssWidth = Math.ceil((cols + 3) * cell);
      this.cssHeight = Math.ceil((maxY - minY + 4) * cell);
      const shift = new Map();
      for (const [name, rows] of this.sections) {
        let wide = 0;
        for (const list of rows.values()) for (const i of list) wide = Math.max(wide, x[i] - minX + 1);
        shift.set(name, Math.floor((cols - wide) / 2));
      }
      this.sectionOf = new Array(this.n);
      for (const [name, rows] of this.sections) for (const list of rows.values()) for (const i of list) this.sectionOf[i] = name;
      for (let i = 0; i < this.n; i += 1) {
        this.px[i] = (x[i] - minX + 2 + (shift.get(this.sectionOf[i]) || 0)) * cell;
        this.py[i] = (y[i] - minY + 2) * cell;
      }
    }
    // Bucket grid for hit tests: buckets of the seat spacing.
    this.bucket = Math.max(8, this.size * 2.5);
    this.buckets = new Map();
    for (let i = 0; i < this.n; i += 1) {
      const key = `${Math.floor(this.px[i] / this.bucket)},${Math.floor(this.py[i] / this.bucket)}`;
      let list = this.buckets.get(key);
      if (!list) this.buckets.set(key, (list = []));
      list.push(i);
    }
    const ratio = window.devicePixelRatio || 1;
    // Browsers cap canvases near 16k px a side; past that the zoom is reduced instead.
    const maxSide = 16000 / ratio;
    if ((this.cssWidth > maxSide || this.cssHeight > maxSide) && this.zoom > 0.2) {
      this.zoom *= Math.min(maxSide / this.cssWidth, maxSide / this.cssHeight) * 0.95;
      this.layout();
      return;
    }
    this.canvas.width = Math.ceil(this.cssWidth * ratio);
    this.canvas.height = Math.ceil(this.cssHeight * ratio);
    this.canvas.style.width = `${this.cssWidth}px`;
    this.canvas.style.height = `${this.cssHeight}px`;
    this.ratio = ratio;
  }

  hit(cx, cy) {
    const bx = Math.floor(cx / this.bucket);
    const by = Math.floor(cy / this.bucket);
    let best = -1;
    let bestDistance = (this.size * 1.6) ** 2;
    for (let dx = -1; dx <= 1; dx += 1) {
      for (let dy = -1; dy <= 1; dy += 1) {
        for (const i of this.buckets.get(`${bx + dx},${by + dy}`) || []) {
          const d = (this.px[i] - cx) ** 2 + (this.py[i] - cy) ** 2;
          if (d < bestDistance) {
            bestDistance = d;
            best = i;
          }
        }
      }
    }
    return best;
  }

  setZoom(zoom) {
    this.zoom = Math.max(0.25, Math.min(6, zoom));
    this.layout();
    this.draw();
    if (this.cursor >= 0) this.scrollTo(this.cursor);
  }

  scrollTo(i) {
    const v = this.viewport;
    const left = this.px[i] - v.clientWidth / 2;
    const top = this.py[i] - v.clientHeight / 2;
    if (this.px[i] < v.scrollLeft + 20 || this.px[i] > v.scrollLeft + v.clientWidth - 20) v.scrollLeft = left;
    if (this.py[i] < v.scrollTop + 20 || this.py[i] > v.scrollTop + v.clientHeight - 20) v.scrollTop = top;
  }

  // --- drawing -----------------------------------------------------------------------------

  draw() {
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = null;
      this.paint();
    });
  }

  paint() {
    const ctx = this.canvas.getContext('2d');
    const colours = {
      f: cssVar(this.el, '--seat-free'),
      h: cssVar(this.el, '--seat-held'),
      s: cssVar(this.el, '--seat-sold'),
      mine: cssVar(this.el, '--seat-mine'),
      cursor: cssVar(this.el, '--seat-cursor'),
      danger: cssVar(this.el, '--danger'),
      card: cssVar(this.el, '--card'),
      muted: cssVar(this.el, '--muted'),
    };
    ctx.setTransform(this.ratio, 0, 0, this.ratio, 0, 0);
    ctx.clearRect(0, 0, this.cssWidth, this.cssHeight);
    if (this.svg?.image?.complete) {
      ctx.drawImage(this.svg.image, 0, 0, this.cssWidth, this.cssHeight);
    }
    const s = this.size;
    const round = this.svg !== null;
    // Batch by colour: one path per state keeps 100k seats to a few fill calls.
    const groups = { f: [], h: [], s: [], mine: [] };
    for (let i = 0; i < this.n; i += 1) {
      if (this.mine.has(i) || this.selected.has(i)) groups.mine.push(i);
      else groups[this.state[i]]?.push(i);
    }
    for (const [key, list] of Object.entries(groups)) {
      if (!list.length) continue;
      ctx.fillStyle = colours[key];
      ctx.beginPath();
      for (const i of list) {
        if (round) {
          ctx.moveTo(this.px[i] + s, this.py[i]);
          ctx.arc(this.px[i], this.py[i], s, 0, Math.PI * 2);
        } else {
          ctx.rect(this.px[i] - s, this.py[i] - s, s * 2, s * 2);
        }
      }
      ctx.fill();
    }
    // Sold seats get a cross, so state does not rest on colour alone.
    if (s >= 4 && groups.s.length) {
      ctx.strokeStyle = colours.card;
      ctx.lineWidth = Math.max(1, s / 4);
      ctx.beginPath();
      const d = s * 0.55;
      for (const i of groups.s) {
        ctx.moveTo(this.px[i] - d, this.py[i] - d);
        ctx.lineTo(this.px[i] + d, this.py[i] + d);
        ctx.moveTo(this.px[i] + d, this.py[i] - d);
        ctx.lineTo(this.px[i] - d, this.py[i] + d);
      }
      ctx.stroke();
    }
    // Selected (not yet held) seats: a ring, to tell them from the held ones.
    if (this.selected.size) {
      ctx.strokeStyle = colours.card;
      ctx.lineWidth = Math.max(1, s / 3);
      ctx.beginPath();
      for (const i of this.selected) {
        ctx.moveTo(this.px[i] + s * 0.45, this.py[i]);
        ctx.arc(this.px[i], this.py[i], s * 0.45, 0, Math.PI * 2);
      }
      ctx.stroke();
    }
    const now = performance.now();
    if (this.flashing.size) {
      ctx.strokeStyle = colours.danger;
      ctx.lineWidth = Math.max(2, s / 2);
      const on = Math.floor(now / 250) % 2 === 0;
      if (on) {
        ctx.beginPath();
        for (const [i, until] of this.flashing) {
          if (until < now) {
            this.flashing.delete(i);
            continue;
          }
          ctx.moveTo(this.px[i] + s * 1.5, this.py[i]);
          ctx.arc(this.px[i], this.py[i], s * 1.5, 0, Math.PI * 2);
        }
        ctx.stroke();
      }
      for (const [i, until] of this.flashing) if (until < now) this.flashing.delete(i);
      if (this.flashing.size) setTimeout(() => this.draw(), 250);
    }
    if (this.cursor >= 0 && this.canvas.matches(':focus-visible')) {
      ctx.strokeStyle = colours.cursor;
      ctx.lineWidth = Math.max(2, s / 2.5);
      ctx.strokeRect(this.px[this.cursor] - s - 3, this.py[this.cursor] - s - 3, s * 2 + 6, s * 2 + 6);
    }
    // Row numbers along the left edge of grid venues, when there is room.
    if (!round && this.cell >= 14) {
      ctx.fillStyle = colours.muted;
      ctx.font = `${Math.min(12, this.cell * 0.5)}px system-ui, sans-serif`;
      ctx.textAlign = 'center';
      ctx.textBaseline = 'middle';
      for (const rows of this.sections.values()) {
        for (const [row, seats] of rows) {
          if (!row || !seats.length) continue;
          const i = seats[0];
          ctx.fillText(row, this.px[i] - this.cell, this.py[i]);
        }
      }
    }
    // Section names above each grid section.
    if (!round && this.cell >= 8) {
      ctx.fillStyle = colours.muted;
      ctx.font = `600 ${Math.max(10, Math.min(13, this.cell * 0.6))}px system-ui, sans-serif`;
      ctx.textAlign = 'left';
      ctx.textBaseline = 'middle';
      for (const [name, rows] of this.sections) {
        const first = rows.values().next().value;
        if (!first?.length) continue;
        const i = first[0];
        ctx.fillText(`Section ${name}`, this.px[i] - this.size, this.py[i] - this.cell * 1.1);
      }
    }
  }

  // --- selection ---------------------------------------------------------------------------

  toggle(i) {
    if (this.mine.has(i)) {
      this.announce(`Seat ${this.label(i)} is already held for you.`);
      return;
    }
    if (this.selected.has(i)) {
      this.selected.delete(i);
    } else {
      if (this.state[i] !== 'f') {
        this.announce(`Seat ${this.label(i)} is ${STATE_WORD[this.state[i]]}.`);
        this.flash([i], 800);
        return;
      }
      const max = this.o.maxSelect || 10;
      if (this.selected.size >= max) {
        this.announce(`You can choose at most ${max} seats.`);
        this.o.onLimit?.(max);
        return;
      }
      this.selected.add(i);
    }
    this.paintButton(i);
    this.announce();
    this.draw();
    this.o.onSelect?.(this.selectedSeats());
  }

  selectedSeats() {
    return [...this.selected].map((i) => ({
      id: this.data.ids[i],
      label: this.label(i),
      cls: this.priceOf[this.data.class[i]],
    }));
  }

  clearSelection() {
    const was = [...this.selected];
    this.selected.clear();
    for (const i of was) this.paintButton(i);
    this.draw();
    this.o.onSelect?.([]);
  }

  /** The fan's held seats (ids), drawn as theirs. */
  setMine(seatIds = []) {
    const was = [...this.mine];
    this.mine = new Set(seatIds.map((id) => this.index.get(id)).filter((i) => i !== undefined));
    for (const i of [...was, ...this.mine]) this.paintButton(i);
    for (const i of this.mine) this.selected.delete(i);
    this.draw();
  }

  /** Seats someone else just took: shown taken at once and flashed. */
  markTaken(seatIds, state = 'h') {
    const idx = seatIds.map((id) => this.index.get(id)).filter((i) => i !== undefined);
    for (const i of idx) {
      if (this.state[i] === 'f') this.state[i] = state;
      this.selected.delete(i);
      this.paintButton(i);
      this.rowButtons?.get(i)?.classList.add('flash');
    }
    this.flash(idx);
    this.o.onSelect?.(this.selectedSeats());
    this.emitCounts();
    return idx.map((i) => this.label(i));
  }

  flash(idx, ms = 2500) {
    const until = performance.now() + ms;
    for (const i of idx) this.flashing.set(i, until);
    this.draw();
  }

  firstFree() {
    const i = this.state.indexOf('f');
    return i >= 0 ? i : 0;
  }

  announce(text) {
    this.cursorText.textContent = text || (this.cursor >= 0 ? this.describe(this.cursor) : '');
  }

  onKey(event) {
    const moves = { ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1] };
    if (moves[event.key]) {
      event.preventDefault();
      const next = this.neighbour(this.cursor < 0 ? this.firstFree() : this.cursor, ...moves[event.key]);
      if (next >= 0) {
        this.cursor = next;
        this.scrollTo(next);
        this.announce();
        this.draw();
      }
    } else if (event.key === 'Enter' || event.key === ' ') {
      event.preventDefault();
      if (this.cursor >= 0) {
        this.toggle(this.cursor);
        this.showRowOf(this.cursor);
      }
    } else if (event.key === 'Home' || event.key === 'End') {
      event.preventDefault();
      const { section, row } = parseLabel(this.label(this.cursor));
      const seats = this.sections.get(section)?.get(row) || [];
      if (seats.length) {
        this.cursor = event.key === 'Home' ? seats[0] : seats[seats.length - 1];
        this.scrollTo(this.cursor);
        this.announce();
        this.draw();
      }
    }
  }

  // The nearest seat in a direction: within a 45° cone, closest first.
  neighbour(from, dx, dy) {
    const fx = this.px[from];
    const fy = this.py[from];
    let best = -1;
    let bestScore = Infinity;
    for (let i = 0; i < this.n; i += 1) {
      const vx = this.px[i] - fx;
      const vy = this.py[i] - fy;
      const along = vx * dx + vy * dy;
      if (along <= 0.5) continue;
      const across = Math.abs(vx * dy - vy * dx);
      if (across > along) continue;
      const score = along + across * 2;
      if (score < bestScore) {
        bestScore = score;
        best = i;
      }
    }
    return best;
  }

  // --- live states -------------------------------------------------------------------------

  applyStates(text) {
    if (typeof text !== 'string' || text.length !== this.n) return;
    const changed = [];
    for (let i = 0; i < this.n; i += 1) {
      const c = text[i];
      if (c !== this.state[i]) {
        this.state[i] = c;
        changed.push(i);
      }
    }
    if (!changed.length) return;
    const lost = [];
    for (const i of changed) {
      if (this.selected.has(i) && this.state[i] !== 'f') {
        this.selected.delete(i);
        lost.push(i);
      }
      this.paintButton(i);
    }
    if (lost.length) {
      this.flash(lost);
      this.o.onLost?.(lost.map((i) => this.label(i)));
      this.o.onSelect?.(this.selectedSeats());
    }
    this.emitCounts();
    this.draw();
  }

  emitCounts() {
    if (!this.o.onStates) return;
    const counts = this.data.classes.map((name) => ({ name, free: 0, held: 0, sold: 0 }));
    for (let i = 0; i < this.n; i += 1) {
      const c = counts[this.data.class[i]];
      if (!c) continue;
      if (this.state[i] === 'f') c.free += 1;
      else if (this.state[i] === 'h') c.held += 1;
      else c.sold += 1;
    }
    this.o.onStates(counts);
  }

  async poll() {
    clearTimeout(this.timer);
    if (this.stopped) return;
    if (document.visibilityState === 'visible') {
      try {
        const text = await this.o.api.get(`/api/events/${this.o.eventId}/seats?format=state`, { signal: this.o.signal });
        this.applyStates(text);
      } catch (err) {
        if (err.name === 'AbortError') return;
      }
    }
    if (!this.stopped && document.visibilityState === 'visible') this.timer = setTimeout(() => this.poll(), POLL_MS);
  }

  startPolling() {
    document.addEventListener('visibilitychange', this.visible);
    this.timer = setTimeout(() => this.poll(), POLL_MS);
  }

  destroy() {
    this.stopped = true;
    clearTimeout(this.timer);
    document.removeEventListener('visibilitychange', this.visible);
    this.resizer?.disconnect();
    if (this.svg?.url) URL.revokeObjectURL(this.svg.url);
  }
}
