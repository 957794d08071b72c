// /organizer/venues: the organizer's venues; /organizer/venues/:id: one venue with its layout
// (the SVG drawing exactly as the API serves it, sanitized, with the seats on top).

import { h, mount, dateTime, badge, spinner, errorBox, plural } from '../../ui.js';
import { organizerTabs, svgPreview, viewBoxOf, drawGrid } from './common.js';
import { pager } from './home.js';

export async function render(ctx) {
  if (ctx.params.id) return one(ctx);
  return list(ctx);
}

async function list({ root, api, query, signal, setTitle }) {
  setTitle('Venues');
  const page = Math.max(1, Number(query.get('page')) || 1);
  const body = h('section', {});
  root.append(
    h('div', { class: 'spread' }, h('h1', {}, 'Venues'),
      h('a', { class: 'btn btn--primary', href: '/organizer/venues/new', dataset: { link: '' } }, 'New venue')),
    organizerTabs('/organizer/venues'), body);
  const load = async () => {
    mount(body, spinner('Loading venues…'));
    try {
      const data = await api.get(`/api/venues?page=${page}&per_page=20`, { signal });
      const items = data.items || [];
      const pages = Math.max(1, Math.ceil((data.total || 0) / (data.per_page || 20)));
      mount(body,
        h('p', { class: 'muted' }, plural(data.total || 0, 'venue', 'venues')),
        items.length === 0
          ? h('div', { class: 'empty' }, h('p', {}, 'No venues yet.'),
            h('a', { class: 'btn btn--primary', href: '/organizer/venues/new', dataset: { link: '' } }, 'Build your first venue'))
          : h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Your venues' },
            h('table', { class: 'manage-table', id: 'venues' },
              h('thead', {}, h('tr', {},
                h('th', { scope: 'col' }, 'Venue'), h('th', { scope: 'col' }, 'City'), h('th', { scope: 'col' }, 'Layout'),
                h('th', { scope: 'col', class: 'num' }, 'Seats'), h('th', { scope: 'col' }, 'Created'))),
              h('tbody', {}, items.map((v) => h('tr', { dataset: { venue: v.id } },
                h('td', {}, h('a', { href: `/organizer/venues/${v.id}`, dataset: { link: '' } }, v.name)),
                h('td', {}, v.city || '—'),
                h('td', {}, badge(v.layout_kind === 'svg' ? 'SVG drawing' : 'Grid', 'neutral')),
                h('td', { class: 'num' }, v.capacity.toLocaleString()),
                h('td', {}, dateTime(v.created_at))))))),
        pages > 1 ? pager(page, pages, (p) => `/organizer/venues?page=${p}`) : null);
    } catch (err) {
      if (err.name === 'AbortError') return;
      mount(body, errorBox(err, load));
    }
  };
  await load();
}

async function one({ root, api, params, signal, setTitle, onCleanup }) {
  let venue;
  try {
    venue = await api.get(`/api/venues/${encodeURIComponent(params.id)}`, { signal });
  } catch (err) {
    if (err.name === 'AbortError') return;
    mount(root, h('h1', {}, 'Venue'), organizerTabs(''), errorBox(err));
    return;
  }
  setTitle(venue.name);
  root.append(
    h('h1', {}, venue.name),
    organizerTabs(''),
    h('p', { class: 'muted' }, [venue.city, `${venue.capacity.toLocaleString()} seats`, `sections ${venue.sections.join(', ')}`].filter(Boolean).join(' · ')),
    h('p', {}, h('a', { class: 'btn btn--primary', href: `/organizer/events/new?venue=${venue.id}`, dataset: { link: '' } }, 'Create an event here')));
  const holder = h('div', { class: 'card', id: 'venue-layout' });
  root.append(holder);
  if (venue.layout.kind === 'grid') {
    const canvas = h('canvas', { class: 'grid-preview', role: 'img', 'aria-label': `Seating plan: ${venue.layout.sections.map((s) => `section ${s.name}, ${s.rows} rows of ${s.seats_per_row}`).join('; ')}` });
    mount(holder, h('h2', {}, 'Seating plan'), canvas);
    const redraw = () => drawGrid(canvas, venue.layout.sections);
    redraw();
    window.addEventListener('resize', redraw);
    onCleanup(() => window.removeEventListener('resize', redraw));
  } else {
    const url = `/api/venues/${venue.id}/layout.svg`;
    const box = viewBoxOf(venue.layout.svg || '') || [0, 0, 1000, 1000];
    mount(holder, h('h2', {}, 'Drawing, as fans see it'),
      h('p', { class: 'muted small' }, 'This is the sanitized drawing the API serves, with every seat as a dot.'),
      svgPreview({ src: url, box, seats: venue.layout.seats, label: `Drawing of ${venue.name} with ${venue.layout.seats.length} seats` }));
  }
}
