// The top of the event page: the hero (status, title, date, venue, description), the sale's
// notice (a countdown to the opening, or "cancelled"), and the price list with live counts.

import { h, mount, money, dateTime, clock, badge } from '../../../ui.js';
import { statusBadge } from '../events.js';

/** The hero, with `saleNotice` (see below) under the description. */
export function eventHero(event, saleNotice) {
  return h('header', { class: 'event-hero' },
    h('div', { class: 'row', style: 'margin-bottom:0.5rem' }, statusBadge(event.status), event.high_demand ? badge('High demand: waiting room', 'warning') : null),
    h('h1', {}, event.title),
    h('p', { class: 'event-hero__meta' },
      h('span', {}, h('time', { datetime: event.starts_at }, dateTime(event.starts_at))),
      h('span', {}, `${event.venue.name}, ${event.venue.city}`)),
    event.description ? h('p', {}, event.description) : null,
    saleNotice);
}

/** A live region for the sale's state: empty while on sale; the clock stops at cleanup. */
export function saleNotice(event, onCleanup) {
  const notice = h('div', { 'aria-live': 'polite' });
  if (event.status === 'scheduled') {
    const tickOpen = () => {
      const seconds = (new Date(event.sale_opens_at).getTime() - Date.now()) / 1000;
      mount(notice, h('div', { class: 'notice notice--info' },
        h('p', {}, 'The sale opens ', h('time', { datetime: event.sale_opens_at }, dateTime(event.sale_opens_at)),
          seconds > 0 ? ['  — in ', h('span', { class: 'countdown' }, clock(seconds))] : ' — now. Reload the page.')));
    };
    tickOpen();
    const openTimer = setInterval(tickOpen, 1000);
    onCleanup(() => clearInterval(openTimer));
  } else if (event.status === 'cancelled') {
    mount(notice, h('div', { class: 'notice notice--error' }, h('p', {}, 'This event has been cancelled.')));
  }
  return notice;
}

/**
 * The classes and their prices. `counts` (class name → live counts from the seat map) is read
 * at each `refresh()`; before the first poll the event's own availability is shown.
 */
export function priceList(event, counts) {
  const el = h('ul', { class: 'price-list', 'aria-label': 'Prices' });
  const refresh = () => mount(el, event.classes.map((c) => {
    const live = counts.get(c.name) || event.availability.find((a) => a.class === c.name) || {};
    const free = live.free;
    return h('li', { dataset: { class: c.name } },
      h('span', {}, h('strong', {}, c.name), h('br'), h('span', { class: 'muted small' },
        free === undefined ? `${c.capacity} seats` : free === 0 ? 'Sold out' : `${free} of ${c.capacity} left`)),
      h('span', {}, free === 0 ? badge('Sold out', 'danger') : h('strong', {}, money(c.price, c.currency))));
  }));
  refresh();
  return { el, refresh };
}
