// /admin/dead-letters?status=open|resolved|all&page=: booking commands the registration
// workers could not process, newest first; an open one can be resolved with a note (audited).
import { h, mount, dateTime, badge, spinner, errorBox, errorMessage, toast, plural } from '../../ui.js';
import { adminTabs, shortId } from './common.js';
import { tabNav } from '../organizer/common.js';
import { pager } from '../organizer/home.js';

export async function render({ root, api, query, signal, setTitle }) {
  const status = ['open', 'resolved', 'all'].includes(query.get('status')) ? query.get('status') : 'open';
  const page = Math.max(1, Number(query.get('page')) || 1);
  setTitle(`Dead letters (${status})`);
  const here = (s) => (s === 'open' ? '/admin/dead-letters' : `/admin/dead-letters?status=${s}`);
  const body = h('section', {});
  root.append(h('h1', {}, 'Dead letters'), adminTabs('/admin/dead-letters'),
    tabNav('Status', [[here('open'), 'Open'], [here('resolved'), 'Resolved'], [here('all'), 'All']], here(status)),
    h('p', { class: 'muted small' }, 'Booking commands the registration workers gave up on. Check the booking, then record what was done.'),
    body);

  const resolveCell = (item, cell) => {
    if (item.resolved_at) {
      mount(cell, badge('Resolved', 'success'), h('div', { class: 'muted small wrap-text' }, `${dateTime(item.resolved_at)}${item.note ? ` · ${item.note}` : ''}`));
      return;
    }
    const id = `note-${item.id}`;
    const note = h('input', { id, name: 'note', maxlength: 1000, autocomplete: 'off', placeholder: 'What was done' });
    const error = h('p', { class: 'form-error small', role: 'alert' });
    const submit = h('button', { type: 'submit', class: 'btn btn--small' }, 'Resolve');
    const form = h('form', { class: 'ban-form', novalidate: true },
      h('label', { for: id, class: 'small' }, `Note for dead letter ${item.id}`), note, error, submit);
    form.addEventListener('submit', async (event) => {
      event.preventDefault();
      const text = note.value.trim();
      if (!text) {
        error.textContent = 'Write what was done (1 to 1000 characters).';
        note.setAttribute('aria-invalid', 'true');
        note.focus();
        return;
      }
      submit.disabled = true;
      try {
        const updated = await api.post(`/api/admin/dead-letters/${item.id}/resolve`, { note: text });
        toast(`Dead letter ${item.id} resolved.`, 'success');
        resolveCell(updated, cell);
      } catch (err) {
        error.textContent = err.error === 'already_resolved' ? 'Someone already resolved it.' : errorMessage(err);
        submit.disabled = false;
      }
    });
    mount(cell, form);
  };

  const load = async () => {
    mount(body, spinner('Loading dead letters…'));
    try {
      const data = await api.get(`/api/admin/dead-letters?status=${status}&page=${page}&per_page=25`, { signal });
      const items = data.items || [];
      const pages = Math.max(1, Math.ceil((data.total || 0) / (data.per_page || 25)));
      mount(body,
        h('p', { class: 'muted' }, plural(data.total || 0, `${status === 'all' ? '' : `${status} `}dead letter`, `${status === 'all' ? '' : `${status} `}dead letters`)),
        items.length === 0 ? h('div', { class: 'empty' }, h('p', {}, status === 'open' ? 'Nothing to look at. 🎉' : 'None.'))
          : h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Dead letters' },
            h('table', { class: 'manage-table', id: 'dead-letters' },
              h('thead', {}, h('tr', {},
                h('th', { scope: 'col' }, '#'), h('th', { scope: 'col' }, 'Recorded'), h('th', { scope: 'col' }, 'Reason'),
                h('th', { scope: 'col' }, 'Booking'), h('th', { scope: 'col' }, 'Payload'), h('th', { scope: 'col' }, 'Resolution'))),
              h('tbody', {}, items.map((item) => {
                const cell = h('td', {});
                resolveCell(item, cell);
                return h('tr', { dataset: { deadLetter: item.id } },
                  h('th', { scope: 'row' }, String(item.id)),
                  h('td', {}, dateTime(item.recorded_at), item.death_count > 1 ? h('div', { class: 'muted small' }, `${item.death_count} deaths`) : null),
                  h('td', { class: 'wrap-text' }, item.reason),
                  h('td', {}, item.booking_id ? h('span', { class: 'mono small', title: item.booking_id }, shortId(item.booking_id)) : '—',
                    item.booking_status ? h('div', {}, badge(item.booking_status, item.booking_status === 'confirmed' ? 'success' : item.booking_status === 'rejected' ? 'danger' : 'warning')) : null),
                  h('td', { class: 'wrap-text' }, h('code', { class: 'small' }, item.payload.length > 300 ? `${item.payload.slice(0, 300)}…` : item.payload)),
                  cell);
              })))),
        pages > 1 ? pager(page, pages, (p) => `${here(status)}${status === 'open' ? '?' : '&'}page=${p}`) : null);
    } catch (err) {
      if (err.name === 'AbortError') return;
      mount(body, errorBox(err, load));
    }
  };
  await load();
}
