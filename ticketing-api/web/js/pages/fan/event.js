// An event: details, prices per class (live counts), the live seat map, "best available",
// the fan's hold with its countdown, and checkout. High-demand events send the fan through
// the waiting room first; the admission token it gives rides along on holds and checkout.
//
// render() loads the event and puts the parts together; they live in ./event/: header.js
// (hero, sale notice, prices), order.js (the hold and the actions on it), panel.js (the order
// panel's views and the order bar).

import { h, mount, toast, errorBox, spinner } from '../../ui.js';
import { SeatMap } from '../../seatmap.js';
import { store } from '../../store.js';
import { eventHero, priceList, saleNotice } from './event/header.js';
import { createOrder, takenSeats } from './event/order.js';
import { choice, heldSeats, notOnSale, orderBar } from './event/panel.js';

export async function render(ctx) {
  const { root, api, params, session, navigate, push, signal, onCleanup, setTitle } = ctx;
  const eventId = params.id;
  mount(root, spinner('Loading the event…'));
  let event;
  try {
    event = await api.get(`/api/events/${encodeURIComponent(eventId)}`, { signal });
  } catch (err) {
    if (err.name === 'AbortError') return;
    mount(root, h('h1', {}, err.status === 404 || err.status === 400 ? 'Event not found' : 'Could not load the event'),
      errorBox(err, err.status >= 500 || err.status === 0 ? () => render(ctx) : null),
      h('p', {}, h('a', { href: '/events', dataset: { link: '' } }, 'See every event')));
    return;
  }
  setTitle(event.title);
  const counts = new Map(); // class name → live counts, from the seat map's polls
  const best = { cls: null, quantity: '1' }; // the best-available form's choice, kept across re-renders
  const order = createOrder({ eventId, event, api, session, navigate, push, signal, repaint: renderPanel });
  const prices = priceList(event, counts);
  const panel = h('div', { class: 'card stack sticky-panel', id: 'order-panel', 'aria-labelledby': 'order-heading' });
  const panelStatus = h('div', { role: 'status', 'aria-live': 'polite', class: 'visually-hidden' });
  const bar = orderBar(event, order, panel);

  function renderPanel() {
    // Re-rendering must not steal the fan's focus: put it back on the same control.
    const focusedId = panel.contains(document.activeElement) ? document.activeElement.id : null;
    paintPanel();
    if (focusedId) document.getElementById(focusedId)?.focus({ preventScroll: true });
    bar.paint(order.seatMap?.selectedSeats?.() || []);
  }

  function paintPanel() {
    order.stopCountdown();
    const heading = h('h2', { id: 'order-heading', tabindex: '-1' }, order.hold ? 'Your seats are held' : 'Your order');
    if (event.status !== 'on_sale') {
      mount(panel, heading, notOnSale(event, order, eventId));
      return;
    }
    if (order.hold) {
      const held = heldSeats(event, order);
      mount(panel, heading, held.nodes, panelStatus);
      held.tick();
      order.countdownTimer = setInterval(held.tick, 1000);
      return;
    }
    const chosen = order.seatMap ? order.seatMap.selectedSeats() : [];
    mount(panel, heading, choice(event, order, { eventId, chosen, counts, best }), panelStatus);
  }

  const mapSlot = h('div', {}, spinner('Loading the seat map…'));
  mount(root, eventHero(event, saleNotice(event, onCleanup)),
    h('div', { class: 'layout-event' },
      h('div', { class: 'stack' }, mapSlot),
      h('aside', { class: 'stack', 'aria-label': 'Prices and order' },
        h('section', { class: 'card', 'aria-labelledby': 'prices-heading' }, h('h2', { id: 'prices-heading' }, 'Prices'), prices.el),
        panel)));
  root.append(bar.el);
  renderPanel();
  onCleanup(() => {
    document.body.classList.remove('has-order-bar');
    order.stopCountdown();
    order.seatMap?.destroy();
  });

  const seatMap = new SeatMap({
    eventId,
    // Only SVG venues have a drawing to fetch; grid venues are drawn from the seats alone.
    venueId: event.venue?.kind === 'svg' ? event.venue_id : null,
    api,
    classes: event.classes,
    maxSelect: event.max_seats_per_order,
    signal,
    onSelect: () => { if (!order.hold) renderPanel(); },
    onLimit: (max) => toast(`You can choose at most ${max} seats in one order.`, 'info'),
    onLost: (labels) => toast(`Sorry, ${takenSeats(labels)} just taken by someone else.`, 'error'),
    onStates: (list) => {
      const soldOut = () => [...counts.values()].filter((c) => c.free === 0).map((c) => c.name).join();
      const before = soldOut();
      for (const c of list) counts.set(c.name, c);
      prices.refresh();
      // Keep the best-available form in step with sold-out classes; only then, so that a
      // busy sale does not redraw (and close) the form's menus every poll.
      if (before !== soldOut() && !order.hold && !order.busy) renderPanel();
    },
  });
  order.seatMap = seatMap;
  mount(mapSlot, seatMap.el);
  try {
    await seatMap.load();
  } catch (err) {
    if (err.name === 'AbortError') return;
    mount(mapSlot, errorBox(err, () => render(ctx)));
    return;
  }

  // A hold from before a reload, if it is still alive.
  const saved = store.hold(eventId);
  if (saved && session.loggedIn) {
    try {
      const live = await api.get(`/api/holds/${saved.hold_id}`, { signal });
      order.setHold(live, saved.idempotency_key);
    } catch (err) {
      if (err.name !== 'AbortError') store.setHold(eventId, null);
    }
  }
}
