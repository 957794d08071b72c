// /admin/applications?status=pending|approved|rejected: organizer applications; pending ones
// get Approve / Reject. The row shows the decision at once.
import { h, mount, dateTime, badge, spinner, errorBox, errorMessage, toast, plural } from '../../ui.js';
import { adminTabs, shortId } from './common.js';
import { tabNav } from '../organizer/common.js';

const KIND = { pending: 'warning', approved: 'success', rejected: 'danger' };

export async function render({ root, api, query, signal, setTitle }) {
  const status = ['pending', 'approved', 'rejected'].includes(query.get('status')) ? query.get('status') : 'pending';
  setTitle(`Applications (${status})`);
  const body = h('section', { 'aria-labelledby': 'apps-heading' });
  root.append(h('h1', {}, 'Organizer applications'), adminTabs('/admin/applications'),
    tabNav('Status', [['/admin/applications', 'Pending'], ['/admin/applications?status=approved', 'Approved'], ['/admin/applications?status=rejected', 'Rejected']],
      status === 'pending' ? '/admin/applications' : `/admin/applications?status=${status}`),
    body);

  const decide = async (app, verdict, row, buttons) => {
    for (const b of buttons) b.disabled = true;
    try {
      const user = await api.post(`/api/admin/organizers/${encodeURIComponent(app.user_id)}/${verdict}`);
      const cell = row.querySelector('[data-f="actions"]');
      mount(cell, badge(verdict === 'approve' ? 'Approved' : 'Rejected', verdict === 'approve' ? 'success' : 'danger'));
      row.dataset.decided = verdict;
      toast(`${user.name || user.email}: ${verdict === 'approve' ? 'now an organizer' : 'application rejected'}.`, 'success');
      cell.setAttribute('tabindex', '-1');
      cell.focus();
    } catch (err) {
      toast(err.error === 'no_pending_application' ? 'That application was already decided.' : errorMessage(err), 'error');
      for (const b of buttons) b.disabled = false;
    }
  };

  const load = async () => {
    mount(body, spinner('Loading applications…'));
    try {
      const items = await api.get(`/api/admin/organizer-applications?status=${status}&per_page=100`, { signal });
      const list = Array.isArray(items) ? items : items.items || [];
      mount(body,
        h('h2', { id: 'apps-heading', class: 'visually-hidden' }, `${status} applications`),
        h('p', { class: 'muted' }, plural(list.length, `${status} application`, `${status} applications`)),
        list.length === 0 ? h('div', { class: 'empty' }, h('p', {}, status === 'pending' ? 'Nothing waiting. 🎉' : 'None.'))
          : h('ul', { class: 'app-list', id: 'applications', 'aria-label': 'Applications' }, list.map((app) => {
            const row = h('li', { class: 'card app-card', dataset: { user: app.user_id, application: app.id } });
            let actions;
            if (app.status === 'pending') {
              const approve = h('button', { type: 'button', class: 'btn btn--small btn--primary', 'aria-label': `Approve ${app.company}` }, 'Approve');
              const reject = h('button', { type: 'button', class: 'btn btn--small btn--danger', 'aria-label': `Reject ${app.company}` }, 'Reject');
              approve.addEventListener('click', () => decide(app, 'approve', row, [approve, reject]));
              reject.addEventListener('click', () => decide(app, 'reject', row, [approve, reject]));
              actions = [approve, reject];
            } else {
              actions = [badge(app.status, KIND[app.status]), app.decided_at ? h('span', { class: 'muted small' }, `decided ${dateTime(app.decided_at)}`) : null];
            }
            row.append(
              h('h3', { class: 'card__title' }, app.company),
              h('p', { class: 'card__meta' }, `Sent ${dateTime(app.created_at)} by `,
                app.applicant_email
                  ? h('span', { title: app.user_id }, `${app.applicant_name || ''} <${app.applicant_email}>`.trim())
                  : h('span', { class: 'mono', title: app.user_id }, `user ${shortId(app.user_id)}`)),
              h('p', { class: 'app-card__details' }, app.details || h('span', { class: 'muted' }, 'No details given.')),
              h('div', { class: 'row row--tight', dataset: { f: 'actions' } }, actions));
            return row;
          })));
    } catch (err) {
      if (err.name === 'AbortError') return;
      mount(body, errorBox(err, load));
    }
  };
  await load();
}
