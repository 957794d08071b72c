// /admin/audit?page=: the audit log, newest first, paged.
import { h, mount, dateTime, spinner, errorBox, plural } from '../../ui.js';
import { adminTabs, shortId } from './common.js';
import { pager } from '../organizer/home.js';

function details(value) {
  if (value === null || value === undefined) return '';
  if (typeof value !== 'object') return String(value);
  const entries = Object.entries(value);
  if (entries.length === 0) return '';
  return entries.filter(([, v]) => v !== null && v !== '').map(([k, v]) => `${k}: ${typeof v === 'object' ? JSON.stringify(v) : v}`).join(' · ');
}

export async function render({ root, api, query, signal, setTitle }) {
  const page = Math.max(1, Number(query.get('page')) || 1);
  setTitle(page > 1 ? `Audit log, page ${page}` : 'Audit log');
  const body = h('section', {});
  root.append(h('h1', {}, 'Audit log'), adminTabs('/admin/audit'), body);
  const load = async () => {
    mount(body, spinner('Loading the log…'));
    try {
      const data = await api.get(`/api/admin/audit-log?page=${page}&per_page=50`, { signal });
      const items = data.items || [];
      const pages = Math.max(1, Math.ceil((data.total || 0) / (data.per_page || 50)));
      mount(body,
        h('p', { class: 'muted' }, `${plural(data.total || 0, 'entry', 'entries')}, newest first`),
        h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Audit log' },
          h('table', { class: 'manage-table', id: 'audit' },
            h('thead', {}, h('tr', {},
              h('th', { scope: 'col' }, 'When'), h('th', { scope: 'col' }, 'Action'), h('th', { scope: 'col' }, 'Target'),
              h('th', { scope: 'col' }, 'By'), h('th', { scope: 'col' }, 'Details'))),
            h('tbody', {}, items.map((e) => h('tr', { dataset: { action: e.action } },
              h('td', { class: 'nowrap' }, dateTime(e.created_at)),
              h('td', {}, h('code', {}, e.action)),
              h('td', {}, `${e.target_type} `, h('span', { class: 'mono small', title: e.target_id }, shortId(e.target_id))),
              h('td', {}, e.actor_id ? h('span', { class: 'mono small', title: e.actor_id }, shortId(e.actor_id)) : h('span', { class: 'muted' }, 'system')),
              h('td', { class: 'wrap-text small' }, details(e.details))))))),
        pages > 1 ? pager(page, pages, (p) => `/admin/audit?page=${p}`) : null);
    } catch (err) {
      if (err.name === 'AbortError') return;
      mount(body, errorBox(err, load));
    }
  };
  await load();
}
