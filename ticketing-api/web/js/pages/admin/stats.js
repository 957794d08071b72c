// /admin: the platform's figures (GET /api/admin/stats), refreshed every 10 s while visible.
import { h, mount, money, spinner, errorBox } from '../../ui.js';
import { adminTabs } from './common.js';

const num = (n) => Number(n || 0).toLocaleString();

export async function render({ root, api, signal, onCleanup }) {
  const body = h('div', { id: 'admin-stats' }, spinner('Loading the figures…'));
  const updated = h('p', { class: 'muted small' });
  root.append(h('h1', {}, 'Platform figures'), adminTabs('/admin'), body, updated);
  const stat = (label, value, id, href) => h('div', { class: 'stat', id },
    h('span', { class: 'stat__label' }, label),
    h('span', { class: 'stat__value' }, href ? h('a', { href, dataset: { link: '' } }, value) : value));
  let timer = null;
  const load = async () => {
    clearTimeout(timer);
    try {
      const s = await api.get('/api/admin/stats', { signal });
      const revenue = s.revenue || [];
      mount(body,
        h('h2', {}, 'People'),
        h('div', { class: 'stat-grid stat-grid--wide' },
          stat('Users', num(s.users), 'stat-users'),
          stat('Fans', num(s.fans), 'stat-fans'),
          stat('Organizers', num(s.organizers), 'stat-organizers'),
          stat('Admins', num(s.admins), 'stat-admins'),
          stat('Banned', num(s.banned), 'stat-banned'),
          stat('Applications waiting', num(s.pending_applications), 'stat-pending', '/admin/applications')),
        h('h2', {}, 'Sales'),
        h('div', { class: 'stat-grid stat-grid--wide' },
          stat('Events', num(s.events), 'stat-events'),
          stat('On sale now', num(s.events_on_sale), 'stat-on-sale'),
          stat('Tickets sold', num(s.tickets_sold), 'stat-tickets'),
          stat('Bookings confirmed', num(s.bookings_confirmed), 'stat-bookings'),
          revenue.length === 0 ? stat('Revenue', '—', 'stat-revenue')
            : revenue.map((r) => stat(`Revenue ${r.currency}`, money(r.amount, r.currency), `stat-revenue-${r.currency}`))));
      updated.textContent = `Updated ${new Date().toLocaleTimeString()}`;
    } catch (err) {
      if (err.name === 'AbortError') return;
      mount(body, errorBox(err, load));
    }
    if (!signal.aborted && document.visibilityState === 'visible') timer = setTimeout(load, 10000);
  };
  const onVisible = () => { if (document.visibilityState === 'visible') load(); };
  document.addEventListener('visibilitychange', onVisible);
  onCleanup(() => {
    clearTimeout(timer);
    document.removeEventListener('visibilitychange', onVisible);
  });
  await load();
}
