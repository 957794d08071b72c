// /admin/users?q=&page=: search users by email or name; ban (with a reason, kept in the audit
// log) or unban. The row changes at once.
import { h, mount, badge, spinner, errorBox, errorMessage, toast, plural } from '../../ui.js';
import { adminTabs } from './common.js';
import { pager } from '../organizer/home.js';

const ROLE = { admin: 'accent', organizer: 'success', fan: 'neutral' };

export async function render({ root, api, query, signal, navigate, setTitle }) {
  const q = query.get('q') || '';
  const page = Math.max(1, Number(query.get('page')) || 1);
  setTitle(q ? `Users matching “${q}”` : 'Users');
  const input = h('input', { type: 'search', id: 'user-q', name: 'q', value: q, placeholder: 'Email or name', autocomplete: 'off', maxlength: 200 });
  const form = h('form', { class: 'search', role: 'search' },
    h('label', { for: 'user-q', class: 'visually-hidden' }, 'Search users'), input,
    h('button', { type: 'submit', class: 'btn btn--primary' }, 'Search'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = input.value.trim();
    navigate(value ? `/admin/users?q=${encodeURIComponent(value)}` : '/admin/users', { focus: false });
  });
  const body = h('section', { 'aria-labelledby': 'users-heading' });
  root.append(h('h1', {}, 'Users'), adminTabs('/admin/users'), form, body);

  const actionsFor = (user, cell, row) => {
    mount(cell);
    if (user.role === 'admin') {
      cell.append(h('span', { class: 'muted small' }, 'Admins cannot be banned'));
      return;
    }
    if (user.banned) {
      const unban = h('button', { type: 'button', class: 'btn btn--small', 'aria-label': `Unban ${user.email}` }, 'Unban');
      unban.addEventListener('click', async () => {
        unban.disabled = true;
        try {
          const updated = await api.post(`/api/admin/users/${encodeURIComponent(user.id)}/unban`);
          toast(`${updated.email} may log in again.`, 'success');
          refreshRow(updated, row);
        } catch (err) {
          toast(errorMessage(err), 'error');
          unban.disabled = false;
        }
      });
      cell.append(unban);
      return;
    }
    const ban = h('button', { type: 'button', class: 'btn btn--small btn--danger', 'aria-label': `Ban ${user.email}`, 'aria-expanded': 'false' }, 'Ban…');
    ban.addEventListener('click', () => {
      const reasonId = `reason-${user.id}`;
      const reason = h('input', { id: reasonId, name: 'reason', maxlength: 500, required: true, autocomplete: 'off', placeholder: 'Why?' });
      const error = h('p', { class: 'form-error small', role: 'alert' });
      const confirm = h('button', { type: 'submit', class: 'btn btn--small btn--danger' }, 'Confirm ban');
      const cancel = h('button', { type: 'button', class: 'btn btn--small btn--ghost' }, 'Cancel');
      const banForm = h('form', { class: 'ban-form', novalidate: true, 'aria-label': `Ban ${user.email}` },
        h('label', { for: reasonId, class: 'small' }, `Reason for banning ${user.email}`), reason, error,
        h('div', { class: 'row row--tight' }, confirm, cancel));
      cancel.addEventListener('click', () => {
        actionsFor(user, cell, row);
        cell.querySelector('button')?.focus();
      });
      banForm.addEventListener('submit', async (event) => {
        event.preventDefault();
        const text = reason.value.trim();
        if (!text) {
          error.textContent = 'Give a reason: it is kept in the audit log.';
          reason.setAttribute('aria-invalid', 'true');
          reason.focus();
          return;
        }
        confirm.disabled = true;
        try {
          const updated = await api.post(`/api/admin/users/${encodeURIComponent(user.id)}/ban`, { reason: text });
          toast(`${updated.email} is banned; their sessions end within seconds.`, 'success');
          refreshRow(updated, row);
          row.querySelector('[data-f="actions"] button')?.focus();
        } catch (err) {
          error.textContent = err.error === 'cannot_ban_admin' ? 'Admins cannot be banned.' : errorMessage(err);
          confirm.disabled = false;
        }
      });
      mount(cell, banForm);
      reason.focus();
    });
    cell.append(ban);
  };

  const refreshRow = (user, row) => {
    row.dataset.banned = String(user.banned);
    mount(row.querySelector('[data-f="status"]'), user.banned ? badge('Banned', 'danger') : badge('Active', 'success'));
    mount(row.querySelector('[data-f="role"]'), badge(user.role, ROLE[user.role] || 'neutral'));
    actionsFor(user, row.querySelector('[data-f="actions"]'), row);
  };

  const load = async () => {
    mount(body, spinner('Searching…'));
    try {
      const params = new URLSearchParams({ q, page: String(page), per_page: '25' });
      const data = await api.get(`/api/admin/users?${params}`, { signal });
      const items = data.items || [];
      const pages = Math.max(1, Math.ceil((data.total || 0) / (data.per_page || 25)));
      mount(body,
        h('h2', { id: 'users-heading', class: 'visually-hidden' }, 'Results'),
        h('p', { class: 'muted', role: 'status' }, q ? `${plural(data.total || 0, 'user', 'users')} matching “${q}”` : plural(data.total || 0, 'user', 'users')),
        items.length === 0 ? h('div', { class: 'empty' }, h('p', {}, 'Nobody matches that.'))
          : h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Users' },
            h('table', { class: 'manage-table', id: 'users' },
              h('thead', {}, h('tr', {},
                h('th', { scope: 'col' }, 'User'), h('th', { scope: 'col' }, 'Account'), h('th', { scope: 'col' }, 'Actions'),
                h('th', { scope: 'col' }, 'Role'), h('th', { scope: 'col' }, 'Organizer status'))),
              h('tbody', {}, items.map((user) => {
                const row = h('tr', { dataset: { user: user.id, email: user.email } },
                  h('th', { scope: 'row', class: 'wrap-text user-cell' }, user.name || '—', h('div', { class: 'muted small' }, user.email)),
                  h('td', { dataset: { f: 'status' } }),
                  h('td', { dataset: { f: 'actions' } }),
                  h('td', { dataset: { f: 'role' } }),
                  h('td', {}, user.organizer_status === 'none' ? h('span', { class: 'muted' }, '—') : user.organizer_status));
                refreshRow(user, row);
                return row;
              })))),
        pages > 1 ? pager(page, pages, (p) => `/admin/users?${new URLSearchParams({ q, page: String(p) })}`) : null);
    } catch (err) {
      if (err.name === 'AbortError') return;
      mount(body, errorBox(err, load));
    }
  };
  await load();
}
