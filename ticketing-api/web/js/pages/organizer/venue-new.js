// /organizer/venues/new: build a venue. Either a GRID (sections of rows × seats, drawn live
// as you type) or an SVG DRAWING with its seat list (label,x,y[,section] per line, or JSON).
// The SVG is previewed locally in an <img> (which never runs scripts), then, once the API has
// accepted it, exactly as the API serves it.

import { h, mount, field, errorMessage, toast, plural, formCheck } from '../../ui.js';
import { organizerTabs, drawGrid, svgPreview, viewBoxOf } from './common.js';

const NAME = /^[A-Za-z0-9_]{1,20}$/;
const MAX_SVG = 512 * 1024;

export function render({ root, api, navigate, setTitle, onCleanup }) {
  setTitle('New venue');
  const error = h('p', { class: 'form-error', role: 'alert', id: 'venue-error' });
  const kindGrid = h('input', { type: 'radio', name: 'kind', id: 'kind-grid', value: 'grid', checked: true });
  const kindSvg = h('input', { type: 'radio', name: 'kind', id: 'kind-svg', value: 'svg' });

  // --- grid ---------------------------------------------------------------------------------
  const sectionList = h('ol', { class: 'section-list', id: 'sections' });
  const summary = h('p', { class: 'muted', id: 'grid-summary', 'aria-live': 'polite' });
  const canvas = h('canvas', { class: 'grid-preview', id: 'grid-preview', role: 'img', 'aria-label': 'Preview of the seating plan' });
  let counter = 0;

  const readSections = () => [...sectionList.children].map((li) => ({
    name: li.querySelector('[data-f="name"]').value.trim(),
    rows: Number(li.querySelector('[data-f="rows"]').value),
    seats_per_row: Number(li.querySelector('[data-f="seats"]').value),
  }));

  const redraw = () => {
    const sections = readSections();
    const seats = sections.reduce((n, s) => n + (s.rows > 0 && s.seats_per_row > 0 ? s.rows * s.seats_per_row : 0), 0);
    summary.textContent = `${plural(sections.length, 'section', 'sections')}, ${seats.toLocaleString()} seats`;
    canvas.setAttribute('aria-label', `Preview: ${sections.map((s) => `section ${s.name || 'unnamed'}, ${s.rows} rows of ${s.seats_per_row} seats`).join('; ')}`);
    drawGrid(canvas, sections);
  };

  const addSection = (name, rows, seats) => {
    counter += 1;
    const n = counter;
    const remove = h('button', { type: 'button', class: 'btn btn--small btn--danger', 'aria-label': `Remove section ${name || n}` }, 'Remove');
    const nameInput = h('input', { id: `s${n}-name`, dataset: { f: 'name' }, value: name, maxlength: 20, required: true, autocomplete: 'off', pattern: '[A-Za-z0-9_]{1,20}' });
    const li = h('li', { class: 'section-row', dataset: { section: n } },
      h('div', { class: 'field' }, h('label', { for: `s${n}-name` }, 'Section'), nameInput),
      h('div', { class: 'field' }, h('label', { for: `s${n}-rows` }, 'Rows'),
        h('input', { id: `s${n}-rows`, dataset: { f: 'rows' }, type: 'number', min: 1, max: 1000, value: rows, inputmode: 'numeric', required: true })),
      h('div', { class: 'field' }, h('label', { for: `s${n}-seats` }, 'Seats per row'),
        h('input', { id: `s${n}-seats`, dataset: { f: 'seats' }, type: 'number', min: 1, max: 1000, value: seats, inputmode: 'numeric', required: true })),
      remove);
    nameInput.addEventListener('input', () => remove.setAttribute('aria-label', `Remove section ${nameInput.value || n}`));
    remove.addEventListener('click', () => {
      if (sectionList.children.length === 1) {
        toast('A venue needs at least one section.');
        return;
      }
      const next = li.nextElementSibling || li.previousElementSibling;
      li.remove();
      redraw();
      next?.querySelector('input')?.focus();
    });
    sectionList.appendChild(li);
    return li;
  };
  sectionList.addEventListener('input', redraw);
  const add = h('button', { type: 'button', class: 'btn', id: 'add-section' }, '+ Add a section');
  add.addEventListener('click', () => {
    const used = new Set(readSections().map((s) => s.name));
    const name = [...'ABCDEFGHIJKLMNOPQRSTUVWXYZ'].find((c) => !used.has(c)) || '';
    const li = addSection(name, 10, 20);
    redraw();
    li.querySelector('input').focus();
  });
  addSection('A', 10, 20);

  const gridPanel = h('fieldset', { class: 'card', id: 'grid-panel' },
    h('legend', {}, 'Grid: sections of rows × seats'),
    h('p', { class: 'muted small' }, 'Sections are stacked from the stage backwards, in this order. Seats are labelled SECTION-ROW-SEAT, e.g. A-3-7.'),
    sectionList, add, summary,
    h('div', { class: 'preview-box' }, canvas));

  // --- SVG ----------------------------------------------------------------------------------
  const svgFile = h('input', { type: 'file', id: 'svg-file', accept: '.svg,image/svg+xml' });
  const svgText = h('textarea', { id: 'svg-text', rows: 6, class: 'mono', spellcheck: 'false' });
  const seatsFile = h('input', { type: 'file', id: 'seats-file', accept: '.csv,.txt,.json,text/csv,application/json' });
  const seatsText = h('textarea', { id: 'seats-text', rows: 6, class: 'mono', spellcheck: 'false', placeholder: 'F-1-1,70,100\nF-1-2,94,100' });
  const svgSummary = h('p', { class: 'muted', id: 'svg-summary', 'aria-live': 'polite' });
  const svgPreviewBox = h('div', { class: 'preview-box', id: 'svg-preview' });
  let previewUrl = null;
  onCleanup(() => previewUrl && URL.revokeObjectURL(previewUrl));

  const readFile = (input, target) => input.addEventListener('change', async () => {
    const file = input.files?.[0];
    if (!file) return;
    if (file.size > MAX_SVG * 4) {
      toast('That file is too large.', 'error');
      return;
    }
    target.value = await file.text();
    refreshSvg();
  });
  readFile(svgFile, svgText);
  readFile(seatsFile, seatsText);

  const refreshSvg = () => {
    const text = svgText.value.trim();
    let seats = [];
    let problem = '';
    try {
      seats = parseSeats(seatsText.value);
    } catch (err) {
      problem = err.message;
    }
    svgSummary.classList.toggle('form-error', Boolean(problem));
    if (previewUrl) URL.revokeObjectURL(previewUrl);
    previewUrl = null;
    if (!text) {
      mount(svgPreviewBox, h('p', { class: 'muted' }, 'Choose or paste a drawing to see it here.'));
      svgSummary.textContent = problem || `${plural(seats.length, 'seat', 'seats')}`;
      return;
    }
    const box = viewBoxOf(text);
    if (!box) {
      mount(svgPreviewBox, h('p', { class: 'form-error' }, 'That is not an SVG drawing.'));
      return;
    }
    previewUrl = URL.createObjectURL(new Blob([text], { type: 'image/svg+xml' }));
    mount(svgPreviewBox, svgPreview({ src: previewUrl, box, seats, label: 'Your drawing (local preview)' }));
    svgSummary.textContent = problem || `${plural(seats.length, 'seat', 'seats')} on a ${Math.round(box[2])} × ${Math.round(box[3])} drawing`;
  };
  svgText.addEventListener('input', refreshSvg);
  seatsText.addEventListener('input', refreshSvg);

  const svgPanel = h('fieldset', { class: 'card', id: 'svg-panel', hidden: true },
    h('legend', {}, 'SVG drawing with its seats'),
    h('p', { class: 'muted small' }, 'Plain drawing elements only (no scripts, links to other files or event handlers), at most 512 KB. Seat coordinates are in the drawing’s own units (its viewBox).'),
    field({ label: 'Drawing file (.svg)', id: 'svg-file' }, svgFile),
    field({ label: 'or paste the SVG', id: 'svg-text' }, svgText),
    field({ label: 'Seat list file (.csv or .json)', id: 'seats-file' }, seatsFile),
    field({ label: 'or paste the seats', id: 'seats-text', hint: 'One seat a line: label,x,y or label,x,y,section. Labels like F-1-3 give section F, row 1, seat 3. JSON [{"label","x","y"}] works too.' }, seatsText),
    svgSummary, svgPreviewBox);
  refreshSvg();

  // --- the form -----------------------------------------------------------------------------
  const showKind = () => {
    const grid = kindGrid.checked;
    gridPanel.hidden = !grid;
    svgPanel.hidden = grid;
    if (grid) redraw();
  };
  kindGrid.addEventListener('change', showKind);
  kindSvg.addEventListener('change', showKind);

  const submit = h('button', { type: 'submit', class: 'btn btn--primary', id: 'create-venue' }, 'Create the venue');
  const result = h('div', { id: 'venue-result' });
  const form = h('form', { class: 'stack', novalidate: true, id: 'venue-form' },
    h('div', { class: 'card' },
      h('div', { class: 'form-grid' },
        field({ label: 'Venue name', id: 'venue-name', required: true, maxlength: 200, autocomplete: 'off' }),
        field({ label: 'City', id: 'venue-city', maxlength: 200, autocomplete: 'address-level2' })),
      h('fieldset', { class: 'choice' }, h('legend', {}, 'Layout'),
        h('label', { class: 'choice__item' }, kindGrid, ' Grid builder'),
        h('label', { class: 'choice__item' }, kindSvg, ' SVG drawing upload'))),
    gridPanel, svgPanel, error, h('div', { class: 'row' }, submit), result);

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const fail = formCheck(form, error);
    const nameEl = form.elements['venue-name'];
    const name = nameEl.value.trim();
    if (!name) return fail('Give the venue a name.', nameEl);
    let layout;
    if (kindGrid.checked) {
      const sections = readSections();
      const names = new Set();
      for (const [i, s] of sections.entries()) {
        const li = sectionList.children[i];
        if (!NAME.test(s.name)) return fail('Section names are 1 to 20 letters, digits or _.', li.querySelector('[data-f="name"]'));
        if (names.has(s.name)) return fail(`There are two sections named ${s.name}.`, li.querySelector('[data-f="name"]'));
        names.add(s.name);
        if (!Number.isInteger(s.rows) || s.rows < 1 || s.rows > 1000) return fail(`Section ${s.name}: rows must be 1 to 1000.`, li.querySelector('[data-f="rows"]'));
        if (!Number.isInteger(s.seats_per_row) || s.seats_per_row < 1 || s.seats_per_row > 1000) return fail(`Section ${s.name}: seats per row must be 1 to 1000.`, li.querySelector('[data-f="seats"]'));
      }
      layout = { kind: 'grid', sections };
    } else {
      const svg = svgText.value.trim();
      if (!svg) return fail('Choose or paste the SVG drawing.', svgText);
      if (new Blob([svg]).size > MAX_SVG) return fail('The drawing is larger than 512 KB.', svgText);
      let seats;
      try {
        seats = parseSeats(seatsText.value);
      } catch (err) {
        return fail(err.message, seatsText);
      }
      if (seats.length === 0) return fail('List the seats of the drawing.', seatsText);
      layout = { kind: 'svg', svg, seats };
    }
    submit.disabled = true;
    submit.textContent = 'Creating…';
    try {
      const venue = await api.post('/api/venues', { name, city: form.elements['venue-city'].value.trim() || undefined, layout });
      toast(`Venue “${venue.name}” created with ${venue.capacity.toLocaleString()} seats.`, 'success');
      navigate(`/organizer/venues/${venue.id}`);
    } catch (err) {
      const reason = err.error === 'unsafe_svg'
        ? `The drawing was refused: ${err.message}`
        : err.error === 'invalid_layout' || err.error === 'invalid_field' ? err.message : errorMessage(err);
      fail(reason, null);
      error.focus?.();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Create the venue';
    }
  });

  root.append(h('h1', {}, 'New venue'), organizerTabs('/organizer/venues/new'), form);
  redraw();
  const onResize = () => { if (!gridPanel.hidden) redraw(); };
  window.addEventListener('resize', onResize);
  onCleanup(() => window.removeEventListener('resize', onResize));
}

/** "label,x,y[,section]" lines or a JSON array → [{label, x, y, section?}]; throws a kind Error. */
export function parseSeats(text) {
  const trimmed = String(text || '').trim();
  if (!trimmed) return [];
  if (trimmed.startsWith('[') || trimmed.startsWith('{')) {
    let data;
    try {
      data = JSON.parse(trimmed);
    } catch {
      throw new Error('The seat list is not valid JSON.');
    }
    const list = Array.isArray(data) ? data : data.seats;
    if (!Array.isArray(list)) throw new Error('The JSON seat list must be an array of {label, x, y}.');
    return list.map((s, i) => {
      const seat = { label: String(s.label ?? ''), x: Number(s.x), y: Number(s.y) };
      if (!seat.label || !Number.isFinite(seat.x) || !Number.isFinite(seat.y)) throw new Error(`Seat ${i + 1} needs a label, x and y.`);
      if (s.section) seat.section = String(s.section);
      return seat;
    });
  }
  return trimmed.split(/\r?\n/).filter((line) => line.trim() && !line.trim().startsWith('#')).filter((line, i) => !(i === 0 && /^\s*label\s*[,;\t]/i.test(line))).map((line, i) => {
    const [label, x, y, section] = line.split(/[,;\t]/).map((p) => p.trim());
    const seat = { label, x: Number(x), y: Number(y) };
    if (!label || x === undefined || y === undefined || !Number.isFinite(seat.x) || !Number.isFinite(seat.y)) {
      throw new Error(`Line ${i + 1} of the seat list should be label,x,y (got “${line.slice(0, 40)}”).`);
    }
    if (section) seat.section = section;
    return seat;
  });
}
