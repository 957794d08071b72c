// The order panel's views, painted from the order's state (see order.js): the sale not open,
// the held seats with their countdown and checkout, or the choice (seats chosen on the map,
// and the best-available form); and the order bar that keeps the choice in view on narrow
// screens. Views only: every action is the order's.

import { h, mount, money, clock, toast } from '../../../ui.js';

const queueLink = (eventId) => h('a', { class: 'btn btn--primary btn--block', href: `/events/${eventId}/queue`, dataset: { link: '' } }, 'Join the waiting room');

/** Before or after the sale. */
export function notOnSale(event, order, eventId) {
  return [
    h('p', { class: 'muted' }, event.status === 'scheduled' ? 'Tickets are not on sale yet.' : 'Tickets are not on sale.'),
    order.needsQueue && event.status === 'scheduled' ? queueLink(eventId) : null,
  ];
}

/**
 * The held seats, the time left and the two buttons. `tick()` updates the countdown (and
 * gives the seats up at zero): call it once the nodes are in the page, then every second.
 */
export function heldSeats(event, order) {
  const { hold, busy } = order;
  const left = h('span', { class: 'countdown', id: 'hold-countdown' });
  const tick = () => {
    const seconds = (new Date(hold.expires_at).getTime() - Date.now()) / 1000;
    left.textContent = clock(seconds);
    left.classList.toggle('countdown--urgent', seconds < 60);
    if (seconds <= 0) {
      order.stopCountdown();
      toast('Your hold on these seats ran out, so they went back on sale. Please pick again.', 'error');
      order.clearHold();
      order.seatMap?.poll();
    }
  };
  const nodes = [
    h('div', { class: 'hold-panel' },
      h('p', { style: 'margin:0' }, 'Time left to check out: ', left),
      h('p', { class: 'muted small' }, 'After that, the seats go back on sale.')),
    h('ul', { class: 'selection-list', 'aria-label': 'Held seats' }, hold.seats.map((s) => h('li', {}, `${s.label} · ${s.class}`))),
    h('p', { class: 'spread' }, h('span', {}, 'Total'), h('strong', { id: 'order-total' }, money(order.holdTotal(), event.currency))),
    h('button', { type: 'button', class: 'btn btn--primary btn--block', id: 'checkout', disabled: busy, on: { click: order.checkout } }, busy ? 'Booking…' : 'Confirm booking'),
    h('button', { type: 'button', class: 'btn btn--ghost btn--block', disabled: busy, on: { click: order.release } }, 'Release these seats'),
  ];
  return { nodes, tick };
}

/**
 * Choosing: the sold-out notice, the waiting room's gate, the seats chosen on the map, and
 * the best-available form. `counts`: class name → live counts; `best`: the form's choice,
 * kept across repaints.
 */
export function choice(event, order, { eventId, chosen, counts, best }) {
  const { busy } = order;
  const blocked = order.needsQueue && !order.admitted();
  const total = chosen.reduce((sum, s) => sum + (s.cls?.price || 0), 0);
  const gate = blocked
    ? h('div', { class: 'notice notice--warning' },
      h('p', {}, 'This is a high-demand sale. Take your place in the waiting room; when it is your turn you can hold seats.'),
      queueLink(eventId))
    : null;
  const allSoldOut = event.classes.every((c) => counts.get(c.name)?.free === 0);
  return [
    allSoldOut ? h('div', { class: 'notice notice--error', id: 'sold-out' }, h('p', {}, 'Sold out: every seat is taken right now. Seats that are only held come back if their holds run out; the map stays live.')) : null,
    gate,
    h('div', {},
      h('h3', {}, 'Chosen on the map'),
      chosen.length
        ? h('ul', { class: 'selection-list', 'aria-label': 'Chosen seats' }, chosen.map((s) => h('li', {}, `${s.label} · ${s.cls ? money(s.cls.price, s.cls.currency) : ''}`)))
        : h('p', { class: 'muted small' }, `Pick up to ${event.max_seats_per_order} free seats on the map.`),
      chosen.length ? h('p', { class: 'spread' }, h('span', {}, 'Total'), h('strong', {}, money(total, event.currency))) : null,
      h('button', {
        type: 'button',
        class: 'btn btn--primary btn--block',
        id: 'hold-selected',
        disabled: busy || !chosen.length || blocked,
        on: { click: () => order.placeHold({ seat_ids: chosen.map((s) => s.id) }) },
      }, busy ? 'Holding…' : chosen.length ? `Hold ${chosen.length === 1 ? 'this seat' : `these ${chosen.length} seats`}` : 'Hold seats')),
    bestAvailable(event, order, { counts, best, allSoldOut, blocked }),
  ];
}

/** "Best available": a class (sold-out ones disabled) and a quantity; the server picks. */
function bestAvailable(event, order, { counts, best, allSoldOut, blocked }) {
  const classSelect = h('select', { id: 'best-class', name: 'class' },
    event.classes.map((c) => {
      const free = counts.get(c.name)?.free;
      return h('option', { value: c.name, disabled: free === 0 && !allSoldOut }, `${c.name} · ${money(c.price, c.currency)}${free === 0 ? ' · sold out' : ''}`);
    }));
  const firstAvailable = event.classes.find((c) => counts.get(c.name)?.free !== 0);
  if (best.cls && counts.get(best.cls)?.free !== 0) classSelect.value = best.cls;
  else if (firstAvailable) classSelect.value = firstAvailable.name;
  const quantity = h('select', { id: 'best-quantity', name: 'quantity' },
    Array.from({ length: Math.max(1, event.max_seats_per_order) }, (_, i) => h('option', { value: String(i + 1) }, String(i + 1))));
  quantity.value = best.quantity;
  classSelect.addEventListener('change', () => { best.cls = classSelect.value; });
  quantity.addEventListener('change', () => { best.quantity = quantity.value; });
  const form = h('form', { class: 'stack', 'aria-labelledby': 'best-heading' },
    h('h3', { id: 'best-heading' }, 'Best available'),
    h('div', { class: 'inline-form' },
      h('div', { class: 'field' }, h('label', { for: 'best-class' }, 'Class'), classSelect),
      h('div', { class: 'field', style: 'flex:0 1 6rem' }, h('label', { for: 'best-quantity' }, 'Tickets'), quantity)),
    h('button', { type: 'submit', class: 'btn btn--block', id: 'best-available', disabled: order.busy || allSoldOut || blocked }, allSoldOut ? 'Sold out' : 'Find me the best seats'));
  form.addEventListener('submit', (e) => {
    e.preventDefault();
    if (counts.get(classSelect.value)?.free === 0) {
      toast(`Sorry, ${classSelect.value} is sold out. Try another class.`, 'error');
      return;
    }
    order.placeHold({ class: classSelect.value, quantity: Number(quantity.value) });
  });
  return form;
}

/**
 * On narrow screens the order panel sits below the map: a bar at the bottom keeps the choice
 * (or the hold) in view and jumps to the panel. `paint(chosen)` redraws it.
 */
export function orderBar(event, order, panel) {
  const bar = h('div', { class: 'order-bar', hidden: true });
  const paint = (chosen) => {
    const { hold } = order;
    const count = hold ? hold.seats.length : chosen.length;
    bar.hidden = count === 0;
    document.body.classList.toggle('has-order-bar', count > 0);
    if (!count) return;
    const total = hold ? order.holdTotal() : chosen.reduce((sum, c) => sum + (c.cls?.price || 0), 0);
    mount(bar,
      h('span', {}, h('strong', {}, hold ? `${count} held` : `${count} chosen`), ` · ${money(total, event.currency)}`),
      h('button', {
        type: 'button',
        class: 'btn btn--primary btn--small',
        on: {
          click: () => {
            panel.scrollIntoView({ behavior: 'smooth', block: 'start' });
            document.getElementById(hold ? 'checkout' : 'hold-selected')?.focus({ preventScroll: true });
          },
        },
      }, hold ? 'Check out' : 'Review'));
  };
  return { el: bar, paint };
}
