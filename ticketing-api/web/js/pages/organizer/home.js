// /organizer: an organizer's (or admin's) own events, cancelled ones included; for a fan, the
// application to become an organizer and its status. After an admin approves, "Check again"
// refreshes the session so the new role arrives without logging out.

import { h, mount, money, dateTime, badge, spinner, errorBox, errorMessage, field, plural, toast } from '../../ui.js';
import { statusBadge } from '../fan/events.js';
import { organizerTabs } from './common.js';

export async function render(ctx) {
  const { session } = ctx;
  if (session.hasRole('organizer')) return myEvents(ctx);
  return apply(ctx);
}

// --- a fan: apply -------------------------------------------------------------------------

function apply(ctx) {
  const { root, api, session, setTitle, navigate } = ctx;
  setTitle('Sell tickets');
  const user = session.user;
  const status = user.organizer_status || 'none';
  const recheck = h('button', { type: 'button', class: 'btn', id: 'check-again' }, 'Check again');
  recheck.addEventListener('click', async () => {
    recheck.disabled = true;
    try {
      // A fresh access token carries the role the admin gave.
      await api.refresh();
      const me = await session.reload();
      if (me && session.hasRole('organizer')) {
        toast('You are an organizer now. Welcome!', 'success');
        navigate('/organizer', { replace: true });
      } else {
        toast(me?.organizer_status === 'rejected' ? 'Your application was not approved.' : 'Not decided yet. Please check again later.');
        navigate('/organizer', { replace: true, focus: false });
      }
    } catch (err) {
      toast(errorMessage(err), 'error');
    } finally {
      recheck.disabled = false;
    }
  });

  root.append(h('h1', {}, 'Sell tickets with us'));
  if (status === 'pending') {
    root.append(h('div', { class: 'notice notice--info', id: 'application-status', dataset: { status } },
      h('p', {}, h('strong', {}, 'Your application is being reviewed. '), 'An admin will look at it soon; once approved you can create venues and events here.'),
      recheck));
    return;
  }
  if (status === 'rejected') {
    root.append(h('div', { class: 'notice notice--warning', id: 'application-status', dataset: { status } },
      h('p', {}, 'Your last application was not approved. You may apply again with more details.')));
  }
  if (status === 'approved') {
    // Approved, but this session still has the old role: refresh it.
    root.append(h('div', { class: 'notice notice--success', id: 'application-status', dataset: { status } },
      h('p', {}, 'Your application was approved.'), recheck));
    return;
  }

  const error = h('p', { class: 'form-error', role: 'alert', id: 'apply-error' });
  const submit = h('button', { type: 'submit', class: 'btn btn--primary' }, 'Send the application');
  const form = h('form', { class: 'card card--narrow', novalidate: true, id: 'apply-form' },
    h('p', {}, 'Organizers create venues and events and run their sales. Tell us who you are; an admin decides.'),
    field({ label: 'Company or organisation', id: 'company', required: true, maxlength: 200, autocomplete: 'organization' }),
    field({ label: 'About your events', id: 'details', hint: 'What you organise, how many tickets, a website.' },
      h('textarea', { id: 'details', name: 'details', rows: 4, maxlength: 2000 })),
    error, submit);
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    const company = form.elements.company.value.trim();
    if (!company) {
      error.textContent = 'Enter the name of your company or organisation.';
      form.elements.company.setAttribute('aria-invalid', 'true');
      form.elements.company.focus();
      return;
    }
    submit.disabled = true;
    try {
      await api.post('/api/organizer/applications', { company, details: form.elements.details.value.trim() });
      await session.reload();
      toast('Application sent. We will review it soon.', 'success');
      navigate('/organizer', { replace: true });
    } catch (err) {
      error.textContent = err.error === 'application_pending'
        ? 'You already have an application waiting for review.'
        : errorMessage(err);
    } finally {
      submit.disabled = false;
    }
  });
  root.append(form);
}

// --- an organizer: my events ----------------------------------------------------------------

async function myEvents({ root, api, query, signal, setTitle }) {
  setTitle('My events');
  const page = Math.max(1, Number(query.get('page')) || 1);
  const list = h('section', { 'aria-labelledby': 'my-events-heading' });
  root.append(
    h('div', { class: 'spread' }, h('h1', {}, 'My events'),
      h('a', { class: 'btn btn--primary', href: '/organizer/events/new', dataset: { link: '' } }, 'New event')),
    organizerTabs('/organizer'),
    list);

  const load = async () => {
    mount(list, spinner('Loading your events…'));
    try {
      const data = await api.get(`/api/organizer/events?page=${page}&per_page=20`, { signal });
      const items = data.items || [];
      const pages = Math.max(1, Math.ceil((data.total || 0) / (data.per_page || 20)));
      mount(list,
        h('h2', { id: 'my-events-heading', class: 'visually-hidden' }, 'Your events'),
        h('p', { class: 'muted' }, plural(data.total || 0, 'event', 'events')),
        items.length === 0
          ? h('div', { class: 'empty' }, h('p', {}, 'No events yet.'),
            h('p', {}, 'Start with a ', h('a', { href: '/organizer/venues/new', dataset: { link: '' } }, 'venue'), ', then ',
              h('a', { href: '/organizer/events/new', dataset: { link: '' } }, 'create an event'), '.'))
          : h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Your events' },
            h('table', { class: 'manage-table', id: 'my-events' },
              h('thead', {}, h('tr', {},
                h('th', { scope: 'col' }, 'Event'), h('th', { scope: 'col' }, 'Status'),
                h('th', { scope: 'col' }, 'Starts'), h('th', { scope: 'col' }, 'Sale opens'),
                h('th', { scope: 'col', class: 'num' }, 'Seats'), h('th', { scope: 'col', class: 'num' }, 'From'))),
              h('tbody', {}, items.map((e) => h('tr', { dataset: { event: e.id } },
                h('td', { class: 'wrap-text event-cell' }, h('a', { href: `/organizer/events/${e.id}`, dataset: { link: '' } }, e.title),
                  h('div', { class: 'muted small' }, `${e.venue.name}, ${e.venue.city}`)),
                h('td', {}, statusBadge(e.status), e.high_demand ? [' ', badge('High demand', 'warning')] : null),
                h('td', {}, dateTime(e.starts_at)),
                h('td', {}, dateTime(e.sale_opens_at)),
                h('td', { class: 'num' }, e.capacity.toLocaleString()),
                h('td', { class: 'num' }, money(e.price_from, e.currency))))))),
        pages > 1 ? pager(page, pages, (p) => `/organizer?page=${p}`) : null);
    } catch (err) {
      if (err.name === 'AbortError') return;
      mount(list, errorBox(err, load));
    }
  };
  await load();
}

export function pager(page, pages, href) {
  return h('nav', { class: 'row', 'aria-label': 'Pages', style: 'margin-top:1rem' },
    page > 1 ? h('a', { class: 'btn btn--small', href: href(page - 1), dataset: { link: '' }, rel: 'prev' }, 'Previous') : null,
    h('span', { class: 'muted' }, `Page ${page} of ${pages}`),
    page < pages ? h('a', { class: 'btn btn--small', href: href(page + 1), dataset: { link: '' }, rel: 'next' }, 'Next') : null);
}
