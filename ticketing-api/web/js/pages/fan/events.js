// The events on sale, with search (?q=). Public.
import { h, mount, money, dateTime, badge, spinner, errorBox, plural } from '../../ui.js';

export const STATUS = {
  on_sale: ['On sale', 'success'],
  scheduled: ['Sale opens soon', 'accent'],
  cancelled: ['Cancelled', 'danger'],
  finished: ['Past event', 'neutral'],
};

export function statusBadge(status) {
  const [text, kind] = STATUS[status] || [status, 'neutral'];
  return badge(text, kind);
}

export async function render({ root, api, query, navigate, signal, setTitle }) {
  const q = query.get('q') || '';
  const page = Math.max(1, Number(query.get('page')) || 1);
  setTitle(q ? `Events matching “${q}”` : 'Events');
  const input = h('input', { type: 'search', id: 'q', name: 'q', value: q, placeholder: 'Artist, show or tour', autocomplete: 'off', maxlength: 200 });
  const form = h('form', { class: 'search', role: 'search' },
    h('label', { for: 'q', class: 'visually-hidden' }, 'Search events'),
    input,
    h('button', { type: 'submit', class: 'btn btn--primary' }, 'Search'));
  form.addEventListener('submit', (event) => {
    event.preventDefault();
    const value = input.value.trim();
    navigate(value ? `/events?q=${encodeURIComponent(value)}` : '/events', { focus: false });
  });
  const results = h('section', { 'aria-labelledby': 'results-heading' });
  root.append(h('h1', {}, 'Find your next night out'), form, results);

  const load = async () => {
    mount(results, spinner('Loading events…'));
    try {
      const params = new URLSearchParams({ q, page: String(page), per_page: '24' });
      const data = await api.get(`/api/events?${params}`, { signal });
      const items = data.items || [];
      const pages = Math.max(1, Math.ceil((data.total || 0) / (data.per_page || 24)));
      mount(results,
        h('h2', { id: 'results-heading', class: 'visually-hidden' }, 'Results'),
        h('p', { class: 'muted', role: 'status' },
          q ? `${plural(data.total || 0, 'event', 'events')} matching “${q}”` : plural(data.total || 0, 'event', 'events')),
        items.length === 0
          ? h('div', { class: 'empty' }, h('p', {}, q ? 'Nothing matches that search.' : 'No events yet.'),
            q ? h('a', { href: '/events', dataset: { link: '' } }, 'Show every event') : null)
          : h('ul', { class: 'grid grid--cards', style: 'list-style:none;padding:0;margin:0', 'aria-label': 'Events' },
            items.map((event) => h('li', { class: 'card card--link' },
              h('div', { class: 'spread', style: 'margin-bottom:0.5rem' }, statusBadge(event.status),
                event.high_demand ? badge('High demand', 'warning') : null),
              h('h3', { class: 'card__title' }, h('a', { href: `/events/${event.id}`, dataset: { link: '' } }, event.title)),
              h('p', { class: 'card__meta' }, dateTime(event.starts_at), h('br'), `${event.venue.name}, ${event.venue.city}`),
              h('p', { style: 'margin:0' }, 'From ', h('strong', {}, money(event.price_from, event.currency)))))),
        pages > 1 ? h('nav', { class: 'row', 'aria-label': 'Pages', style: 'margin-top:1.5rem' },
          page > 1 ? h('a', { class: 'btn', href: `/events?${new URLSearchParams({ q, page: String(page - 1) })}`, dataset: { link: '' } }, 'Previous') : null,
          h('span', { class: 'muted' }, `Page ${page} of ${pages}`),
          page < pages ? h('a', { class: 'btn', href: `/events?${new URLSearchParams({ q, page: String(page + 1) })}`, dataset: { link: '' } }, 'Next') : null) : null);
    } catch (err) {
      if (err.name === 'AbortError') return;
      mount(results, errorBox(err, load));
    }
  };
  await load();
}
