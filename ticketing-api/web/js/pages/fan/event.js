// An event: details, prices per class (live counts), the live seat map, "best available",
// the fan's hold with its countdown, and checkout. High-demand events send the fan through
// the waiting room first; the admission token it gives rides along on holds and checkout.

import { h, mount, money, dateTime, clock, badge, toast, toastError, errorMessage, errorBox, spinner, uuid, announce } from '../../ui.js';
import { SeatMap } from '../../seatmap.js';
import { store } from '../../store.js';
import { statusBadge } from './events.js';

export async function render(ctx) {
  const { root, api, params, session, navigate, signal, onCleanup, setTitle } = ctx;
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
  const classByName = new Map(event.classes.map((c) => [c.name, c]));
  const onSale = event.status === 'on_sale';
  const needsQueue = event.high_demand;
  let hold = null; // {hold_id, seat_ids, seats, expires_at, idempotency_key}
  let seatMap = null;
  let countdownTimer = null;
  let busy = false;
  const best = { cls: null, quantity: '1' }; // the best-available form's choice, kept across re-renders

  // --- header and prices ---------------------------------------------------------------------
  const counts = new Map();
  const priceList = h('ul', { class: 'price-list', 'aria-label': 'Prices' });
  const renderPrices = () => mount(priceList, event.classes.map((c) => {
    const live = counts.get(c.name) || event.availability.find((a) => a.class === c.name) || {};
    const free = live.free;
    return h('li', { dataset: { class: c.name } },
      h('span', {}, h('strong', {}, c.name), h('br'), h('span', { class: 'muted small' },
        free === undefined ? `${c.capacity} seats` : free === 0 ? 'Sold out' : `${free} of ${c.capacity} left`)),
      h('span', {}, free === 0 ? badge('Sold out', 'danger') : h('strong', {}, money(c.price, c.currency))));
  }));
  renderPrices();

  const saleNotice = h('div', { 'aria-live': 'polite' });
  const hero = h('header', { class: 'event-hero' },
    h('div', { class: 'row', style: 'margin-bottom:0.5rem' }, statusBadge(event.status), event.high_demand ? badge('High demand: waiting room', 'warning') : null),
    h('h1', {}, event.title),
    h('p', { class: 'event-hero__meta' },
      h('span', {}, h('time', { datetime: event.starts_at }, dateTime(event.starts_at))),
      h('span', {}, `${event.venue.name}, ${event.venue.city}`)),
    event.description ? h('p', {}, event.description) : null,
    saleNotice);

  // --- the side panel: choose, hold, checkout --------------------------------------------
  const panel = h('div', { class: 'card stack sticky-panel', id: 'order-panel', 'aria-labelledby': 'order-heading' });
  const panelStatus = h('div', { role: 'status', 'aria-live': 'polite', class: 'visually-hidden' });

  const admissionToken = () => store.admission(eventId)?.token || null;
  const gateHeaders = () => (admissionToken() ? { 'X-Admission-Token': admissionToken() } : {});
  const admitted = () => !needsQueue || Boolean(admissionToken());

  function requireLogin() {
    if (session.loggedIn) return false;
    toast('Log in to buy tickets.', 'info');
    navigate(`/login?next=${encodeURIComponent(location.pathname)}`);
    return true;
  }

  async function handleError(err, where) {
    if (err.name === 'AbortError') return;
    if (err.error === 'seats_unavailable' && err.body?.seat_ids?.length && seatMap) {
      const labels = seatMap.markTaken(err.body.seat_ids);
      toast(`Sorry, ${labels.length === 1 ? `seat ${labels[0]} was` : `seats ${labels.join(', ')} were`} just taken by someone else. Please pick another.`, 'error');
      announce('Some seats were just taken; please pick others.');
      return;
    }
    if (err.error === 'seats_unavailable' && where === 'best') {
      const wanted = err.request?.quantity;
      toast(`Sorry, there are not enough seats left in ${err.request?.class || 'that class'}${wanted > 1 ? ` for ${wanted} tickets` : ''}. Try fewer tickets or another class.`, 'error');
      seatMap?.poll();
      return;
    }
    if (err.error === 'hold_expired' || (err.status === 404 && where === 'checkout')) {
      toast('Your hold on these seats ran out, so they went back on sale. Please pick again.', 'error');
      clearHold();
      seatMap?.poll();
      document.getElementById('seatmap-heading')?.scrollIntoView({ block: 'start' });
      seatMap?.canvas.focus({ preventScroll: true });
      return;
    }
    if (err.error === 'admission_required' || err.error === 'invalid_admission') {
      store.setAdmission(eventId, null);
      toast(errorMessage(err), 'error');
      navigate(`/events/${eventId}/queue`);
      return;
    }
    toastError(err);
  }

  function clearHold() {
    hold = null;
    store.setHold(eventId, null);
    clearInterval(countdownTimer);
    seatMap?.setMine([]);
    renderPanel();
  }

  function setHold(placed, key) {
    hold = { ...placed, idempotency_key: key || placed.idempotency_key || uuid() };
    store.setHold(eventId, hold);
    seatMap?.clearSelection();
    seatMap?.setMine(hold.seat_ids);
    renderPanel();
  }

  async function placeHold(body) {
    if (requireLogin() || busy) return;
    if (!admitted()) {
      navigate(`/events/${eventId}/queue`);
      return;
    }
    busy = true;
    renderPanel();
    try {
      const placed = await api.post(`/api/events/${eventId}/holds`, body, { headers: gateHeaders(), signal });
      setHold(placed);
      toast(`Held ${placed.seats.length === 1 ? 'your seat' : `${placed.seats.length} seats`} for you. Check out before the timer runs out.`, 'success');
      document.getElementById('order-heading')?.focus();
    } catch (err) {
      err.request = body;
      await handleError(err, body.class ? 'best' : 'hold');
    } finally {
      busy = false;
      renderPanel();
    }
  }

  async function release() {
    if (!hold || busy) return;
    busy = true;
    try {
      await api.del(`/api/holds/${hold.hold_id}`, { signal });
    } catch (err) {
      if (err.status !== 404) {
        busy = false;
        await handleError(err, 'release');
        return;
      }
    }
    busy = false;
    clearHold();
    seatMap?.poll();
    toast('Your seats were released.', 'info');
  }

  async function checkout() {
    if (!hold || busy) return;
    busy = true;
    renderPanel();
    try {
      const booking = await api.post(`/api/events/${eventId}/registrations`, { hold_id: hold.hold_id }, {
        headers: { ...gateHeaders(), 'Idempotency-Key': hold.idempotency_key },
        signal,
      });
      store.setHold(eventId, null);
      store.handOff(booking);
      hold = null;
      clearInterval(countdownTimer);
      navigate(`/bookings/${booking.booking_id}`);
    } catch (err) {
      busy = false;
      await handleError(err, 'checkout');
      renderPanel();
      return;
    }
    busy = false;
  }

  const holdTotal = () => (hold?.seats || []).reduce((sum, s) => sum + (classByName.get(s.class)?.price || 0), 0);

  function renderPanel() {
    // Re-rendering must not steal the fan's focus: put it back on the same control.
    const focusedId = panel.contains(document.activeElement) ? document.activeElement.id : null;
    paintPanel();
    if (focusedId) document.getElementById(focusedId)?.focus({ preventScroll: true });
    paintBar();
  }

  // On narrow screens the order panel sits below the map: a bar at the bottom keeps the
  // choice (or the hold) in view and jumps to the panel.
  const bar = h('div', { class: 'order-bar', hidden: true });
  function paintBar() {
    const chosen = seatMap?.selectedSeats?.() || [];
    const count = hold ? hold.seats.length : chosen.length;
    bar.hidden = count === 0;
    document.body.classList.toggle('has-order-bar', count > 0);
    if (!count) return;
    const total = hold ? holdTotal() : chosen.reduce((sum, c) => sum + (c.cls?.price || 0), 0);
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
  }

  function paintPanel() {
    clearInterval(countdownTimer);
    const heading = h('h2', { id: 'order-heading', tabindex: '-1' }, hold ? 'Your seats are held' : 'Your order');
    if (!onSale) {
      mount(panel, heading, h('p', { class: 'muted' }, event.status === 'scheduled' ? 'Tickets are not on sale yet.' : 'Tickets are not on sale.'),
        needsQueue && event.status === 'scheduled' ? h('a', { class: 'btn btn--primary btn--block', href: `/events/${eventId}/queue`, dataset: { link: '' } }, 'Join the waiting room') : null);
      return;
    }
    if (hold) {
      const left = h('span', { class: 'countdown', id: 'hold-countdown' });
      const tick = () => {
        const seconds = (new Date(hold.expires_at).getTime() - Date.now()) / 1000;
        left.textContent = clock(seconds);
        left.classList.toggle('countdown--urgent', seconds < 60);
        if (seconds <= 0) {
          clearInterval(countdownTimer);
          toast('Your hold on these seats ran out, so they went back on sale. Please pick again.', 'error');
          clearHold();
          seatMap?.poll();
        }
      };
      mount(panel,
        heading,
        h('div', { class: 'hold-panel' },
          h('p', { style: 'margin:0' }, 'Time left to check out: ', left),
          h('p', { class: 'muted small' }, 'After that, the seats go back on sale.')),
        h('ul', { class: 'selection-list', 'aria-label': 'Held seats' }, hold.seats.map((s) => h('li', {}, `${s.label} · ${s.class}`))),
        h('p', { class: 'spread' }, h('span', {}, 'Total'), h('strong', { id: 'order-total' }, money(holdTotal(), event.currency))),
        h('button', { type: 'button', class: 'btn btn--primary btn--block', id: 'checkout', disabled: busy, on: { click: checkout } }, busy ? 'Booking…' : 'Confirm booking'),
        h('button', { type: 'button', class: 'btn btn--ghost btn--block', disabled: busy, on: { click: release } }, 'Release these seats'),
        panelStatus);
      tick();
      countdownTimer = setInterval(tick, 1000);
      return;
    }
    const chosen = seatMap ? seatMap.selectedSeats() : [];
    const total = chosen.reduce((sum, s) => sum + (s.cls?.price || 0), 0);
    const gate = needsQueue && !admitted()
      ? h('div', { class: 'notice notice--warning' },
        h('p', {}, 'This is a high-demand sale. Take your place in the waiting room; when it is your turn you can hold seats.'),
        h('a', { class: 'btn btn--primary btn--block', href: `/events/${eventId}/queue`, dataset: { link: '' } }, 'Join the waiting room'))
      : null;
    const allSoldOut = event.classes.every((c) => counts.get(c.name)?.free === 0);
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
    const bestForm = h('form', { class: 'stack', 'aria-labelledby': 'best-heading' },
      h('h3', { id: 'best-heading' }, 'Best available'),
      h('div', { class: 'inline-form' },
        h('div', { class: 'field' }, h('label', { for: 'best-class' }, 'Class'), classSelect),
        h('div', { class: 'field', style: 'flex:0 1 6rem' }, h('label', { for: 'best-quantity' }, 'Tickets'), quantity)),
      h('button', { type: 'submit', class: 'btn btn--block', id: 'best-available', disabled: busy || allSoldOut || (needsQueue && !admitted()) }, allSoldOut ? 'Sold out' : 'Find me the best seats'));
    bestForm.addEventListener('submit', (e) => {
      e.preventDefault();
      if (counts.get(classSelect.value)?.free === 0) {
        toast(`Sorry, ${classSelect.value} is sold out. Try another class.`, 'error');
        return;
      }
      placeHold({ class: classSelect.value, quantity: Number(quantity.value) });
    });
    mount(panel,
      heading,
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
          disabled: busy || !chosen.length || (needsQueue && !admitted()),
          on: { click: () => placeHold({ seat_ids: chosen.map((s) => s.id) }) },
        }, busy ? 'Holding…' : chosen.length ? `Hold ${chosen.length === 1 ? 'this seat' : `these ${chosen.length} seats`}` : 'Hold seats')),
      bestForm,
      panelStatus);
  }

  // --- page ------------------------------------------------------------------------------
  const mapSlot = h('div', {}, spinner('Loading the seat map…'));
  mount(root, hero,
    h('div', { class: 'layout-event' },
      h('div', { class: 'stack' }, mapSlot),
      h('aside', { class: 'stack', 'aria-label': 'Prices and order' },
        h('section', { class: 'card', 'aria-labelledby': 'prices-heading' }, h('h2', { id: 'prices-heading' }, 'Prices'), priceList),
        panel)));

  if (event.status === 'scheduled') {
    const tickOpen = () => {
      const seconds = (new Date(event.sale_opens_at).getTime() - Date.now()) / 1000;
      mount(saleNotice, h('div', { class: 'notice notice--info' },
        h('p', {}, 'The sale opens ', h('time', { datetime: event.sale_opens_at }, dateTime(event.sale_opens_at)),
          seconds > 0 ? ['  — in ', h('span', { class: 'countdown' }, clock(seconds))] : ' — now. Reload the page.')));
    };
    tickOpen();
    const openTimer = setInterval(tickOpen, 1000);
    onCleanup(() => clearInterval(openTimer));
  } else if (event.status === 'cancelled') {
    mount(saleNotice, h('div', { class: 'notice notice--error' }, h('p', {}, 'This event has been cancelled.')));
  }

  root.append(bar);
  renderPanel();
  onCleanup(() => {
    document.body.classList.remove('has-order-bar');
    clearInterval(countdownTimer);
    seatMap?.destroy();
  });

  seatMap = new SeatMap({
    eventId,
    // Only SVG venues have a drawing to fetch; grid venues are drawn from the seats alone.
    venueId: event.venue?.kind === 'svg' ? event.venue_id : null,
    api,
    classes: event.classes,
    maxSelect: event.max_seats_per_order,
    signal,
    onSelect: () => { if (!hold) renderPanel(); },
    onLimit: (max) => toast(`You can choose at most ${max} seats in one order.`, 'info'),
    onLost: (labels) => toast(`Sorry, ${labels.length === 1 ? `seat ${labels[0]} was` : `seats ${labels.join(', ')} were`} just taken by someone else.`, 'error'),
    onStates: (list) => {
      const soldOut = () => [...counts.values()].filter((c) => c.free === 0).map((c) => c.name).join();
      const before = soldOut();
      for (const c of list) counts.set(c.name, c);
      renderPrices();
      // Keep the best-available form in step with sold-out classes; only then, so that a
      // busy sale does not redraw (and close) the form's menus every poll.
      if (before !== soldOut() && !hold && !busy) renderPanel();
    },
  });
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
      setHold(live, saved.idempotency_key);
    } catch (err) {
      if (err.name !== 'AbortError') store.setHold(eventId, null);
    }
  }
}
