// /organizer/events/new: an event at one of your venues, with ticket classes and prices. Each
// class takes sections of the venue (chosen from the venue's own sections); a class with no
// section ticked takes the seats left over. ?venue=ID preselects a venue.

import { h, mount, field, errorMessage, toast, spinner, errorBox, money, formCheck } from '../../ui.js';
import { organizerTabs, CURRENCIES, toMinor, toLocalInput, fromLocalInput } from './common.js';

export async function render({ root, api, navigate, setTitle, signal, query }) {
  setTitle('New event');
  root.append(h('h1', {}, 'New event'), organizerTabs('/organizer/events/new'));
  const body = h('div', {});
  root.append(body);
  mount(body, spinner('Loading your venues…'));
  let venues;
  try {
    venues = (await api.get('/api/venues?per_page=100', { signal })).items || [];
  } catch (err) {
    if (err.name === 'AbortError') return;
    mount(body, errorBox(err));
    return;
  }
  if (venues.length === 0) {
    mount(body, h('div', { class: 'empty' }, h('p', {}, 'An event needs a venue first.'),
      h('a', { class: 'btn btn--primary', href: '/organizer/venues/new', dataset: { link: '' } }, 'Build a venue')));
    return;
  }

  let sections = [];
  const error = h('p', { class: 'form-error', role: 'alert', id: 'event-error' });
  const venueSelect = h('select', { id: 'venue', name: 'venue', required: true },
    venues.map((v) => h('option', { value: v.id }, `${v.name}${v.city ? `, ${v.city}` : ''} (${v.capacity.toLocaleString()} seats)`)));
  const wanted = query.get('venue');
  if (wanted && venues.some((v) => v.id === wanted)) venueSelect.value = wanted;
  const currency = h('select', { id: 'currency', name: 'currency' }, CURRENCIES.map((c) => h('option', { value: c }, c)));
  const classList = h('ol', { class: 'class-list', id: 'classes' });
  const venueInfo = h('p', { class: 'muted small', id: 'venue-sections', 'aria-live': 'polite' });
  let counter = 0;

  const sectionBoxes = (n, checked = []) => h('fieldset', { class: 'choice choice--inline' },
    h('legend', {}, 'Sections'),
    sections.length === 0 ? h('span', { class: 'muted' }, '…')
      : sections.map((s) => h('label', { class: 'choice__item' },
        h('input', { type: 'checkbox', value: s, dataset: { f: 'section' }, checked: checked.includes(s) }), ` ${s}`)));

  const addClass = (name = '', price = '', checked = []) => {
    counter += 1;
    const n = counter;
    const remove = h('button', { type: 'button', class: 'btn btn--small btn--danger' }, 'Remove class');
    const li = h('li', { class: 'class-row card', dataset: { klass: n } },
      h('div', { class: 'form-grid' },
        field({ label: 'Class name', id: `c${n}-name`, value: name, maxlength: 100, required: true, autocomplete: 'off', dataset: { f: 'name' } }),
        field({ label: 'Price', id: `c${n}-price`, value: price, inputmode: 'decimal', required: true, autocomplete: 'off', dataset: { f: 'price' }, hint: 'e.g. 49.50' })),
      h('div', { class: 'class-row__sections' }, sectionBoxes(n, checked)),
      h('p', { class: 'muted small' }, 'No section ticked: this class takes every seat no other class has.'),
      remove);
    remove.addEventListener('click', () => {
      if (classList.children.length === 1) {
        toast('An event needs at least one ticket class.');
        return;
      }
      li.remove();
      classList.querySelector('input')?.focus();
    });
    classList.appendChild(li);
    return li;
  };

  const loadSections = async () => {
    venueInfo.textContent = 'Loading the venue’s sections…';
    try {
      const venue = await api.get(`/api/venues/${encodeURIComponent(venueSelect.value)}`, { signal });
      sections = venue.sections || [];
      venueInfo.textContent = `Sections of ${venue.name}: ${sections.join(', ')}.`;
      for (const li of classList.children) {
        const old = [...li.querySelectorAll('[data-f="section"]:checked')].map((c) => c.value);
        li.querySelector('.class-row__sections').replaceChildren(sectionBoxes(li.dataset.klass, old.filter((s) => sections.includes(s))));
      }
    } catch (err) {
      if (err.name === 'AbortError') return;
      venueInfo.textContent = errorMessage(err);
    }
  };
  venueSelect.addEventListener('change', loadSections);
  const addButton = h('button', { type: 'button', class: 'btn', id: 'add-class' }, '+ Add a class');
  addButton.addEventListener('click', () => addClass().querySelector('input').focus());
  addClass('Standard', '');

  const now = new Date();
  now.setSeconds(0, 0);
  const starts = new Date(now.getTime() + 30 * 86400e3);
  starts.setHours(20, 0, 0, 0);
  const submit = h('button', { type: 'submit', class: 'btn btn--primary', id: 'create-event' }, 'Create the event');
  const form = h('form', { class: 'stack', novalidate: true, id: 'event-form' },
    h('div', { class: 'card' },
      field({ label: 'Title', id: 'title', required: true, maxlength: 200, autocomplete: 'off' }),
      field({ label: 'Description', id: 'description' }, h('textarea', { id: 'description', name: 'description', rows: 3, maxlength: 10000 })),
      field({ label: 'Venue', id: 'venue' }, venueSelect), venueInfo,
      h('div', { class: 'form-grid' },
        field({ label: 'Starts at', id: 'starts_at', type: 'datetime-local', value: toLocalInput(starts), required: true }),
        field({ label: 'Sale opens at', id: 'sale_opens_at', type: 'datetime-local', value: toLocalInput(now), required: true, hint: 'Now or in the past: on sale at once.' })),
      h('div', { class: 'form-grid' },
        field({ label: 'Hold time (seconds)', id: 'hold_seconds', type: 'number', min: 30, max: 3600, value: 600, inputmode: 'numeric', hint: '30 to 3600: how long a fan’s seats stay theirs before checkout.' }),
        field({ label: 'Seats per order, at most', id: 'max_seats_per_order', type: 'number', min: 1, max: 50, value: 6, inputmode: 'numeric' }))),
    h('div', { class: 'card' },
      h('h2', {}, 'Ticket classes'),
      h('p', { class: 'muted small' }, 'Every seat belongs to the first class whose sections include it; a class with no sections takes the rest.'),
      field({ label: 'Currency (every class)', id: 'currency' }, currency),
      classList, addButton),
    error, h('div', { class: 'row' }, submit));

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    const fail = formCheck(form, error);
    const f = form.elements;
    const title = f.title.value.trim();
    if (!title) return fail('Give the event a title.', f.title);
    const startsAt = fromLocalInput(f.starts_at.value);
    const opensAt = fromLocalInput(f.sale_opens_at.value);
    if (!startsAt) return fail('When does the event start?', f.starts_at);
    if (new Date(startsAt) <= new Date()) return fail('The event must start in the future.', f.starts_at);
    if (!opensAt) return fail('When does the sale open?', f.sale_opens_at);
    if (new Date(opensAt) > new Date(startsAt)) return fail('The sale must open before the event starts.', f.sale_opens_at);
    const cur = currency.value;
    const classes = [];
    const names = new Set();
    for (const li of classList.children) {
      const nameEl = li.querySelector('[data-f="name"]');
      const priceEl = li.querySelector('[data-f="price"]');
      const name = nameEl.value.trim();
      if (!name) return fail('Every class needs a name.', nameEl);
      if (names.has(name.toLowerCase())) return fail(`Two classes are named ${name}.`, nameEl);
      names.add(name.toLowerCase());
      const price = toMinor(priceEl.value, cur);
      if (!Number.isFinite(price) || price > 100000000) return fail(`The price of ${name} should be an amount like 49.50.`, priceEl);
      const picked = [...li.querySelectorAll('[data-f="section"]:checked')].map((c) => c.value);
      classes.push({ name, price, currency: cur, sections: picked.length ? picked : undefined });
    }
    const hold = Number(f.hold_seconds.value);
    if (!Number.isInteger(hold) || hold < 30 || hold > 3600) return fail('The hold time is 30 to 3600 seconds.', f.hold_seconds);
    const max = Number(f.max_seats_per_order.value);
    if (!Number.isInteger(max) || max < 1 || max > 50) return fail('Seats per order is 1 to 50.', f.max_seats_per_order);
    submit.disabled = true;
    submit.textContent = 'Creating…';
    try {
      const created = await api.post('/api/events', {
        title,
        description: f.description.value.trim() || undefined,
        venue_id: venueSelect.value,
        starts_at: startsAt,
        sale_opens_at: opensAt,
        classes,
        hold_seconds: hold,
        max_seats_per_order: max,
      });
      toast(`“${created.title}” created: ${created.capacity.toLocaleString()} seats from ${money(Math.min(...classes.map((c) => c.price)), cur)}.`, 'success');
      navigate(`/organizer/events/${created.id}`);
    } catch (err) {
      fail(['invalid_field', 'invalid_time', 'invalid_classes', 'invalid_body'].includes(err.error) || err.status === 422 ? err.message : errorMessage(err));
    } finally {
      submit.disabled = false;
      submit.textContent = 'Create the event';
    }
  });
  mount(body, form);
  await loadSections();
}
