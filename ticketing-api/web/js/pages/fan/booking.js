// One booking. A queued (high-demand) booking starts `pending`; the confirmation appears by
// itself when the notifier's WebSocket says so, with status polling as the fallback (slow while
// the socket is open, faster when it is not).

import { h, mount, money, dateTime, spinner, errorBox, toast, announce } from '../../ui.js';
import { downloadButton } from './tickets.js';
import { store } from '../../store.js';

const POLL_WITH_SOCKET_MS = 5000;
const POLL_WITHOUT_SOCKET_MS = 2000;

export async function render(ctx) {
  const { root, api, params, push, signal, onCleanup, setTitle } = ctx;
  const bookingId = params.id;
  mount(root, spinner('Loading your booking…'));
  // Straight from checkout, a queued booking is known to be pending: no need to ask.
  let booking = store.takeHandoff(bookingId);
  if (booking?.status !== 'pending') {
    try {
      booking = await api.get(`/api/bookings/${encodeURIComponent(bookingId)}`, { signal });
    } catch (err) {
      if (err.name === 'AbortError') return;
      mount(root, h('h1', {}, 'Booking'), errorBox(err, () => render(ctx)));
      return;
    }
  }

  let timer = null;
  let done = false;

  function paint(how) {
    root.dataset.bookingStatus = booking.status;
    if (booking.status === 'pending') {
      setTitle('Confirming your booking');
      mount(root, h('section', { class: 'card queue-card', 'aria-labelledby': 'booking-heading' },
        h('h1', { id: 'booking-heading' }, 'Confirming your booking…'),
        h('p', { class: 'loading', style: 'justify-content:center', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), 'Your seats are reserved while we write your tickets. This usually takes a few seconds.'),
        h('p', { class: 'muted small' }, 'You can leave this page: your tickets will also be emailed to you and listed under My tickets.')));
      return;
    }
    if (booking.status === 'rejected') {
      setTitle('Booking not completed');
      mount(root, h('section', { class: 'card queue-card', 'aria-labelledby': 'booking-heading' },
        h('h1', { id: 'booking-heading' }, 'We could not complete your booking'),
        h('div', { class: 'notice notice--error', role: 'alert' }, h('p', {}, booking.reason ? `Reason: ${booking.reason.replaceAll('_', ' ')}.` : 'The seats could not be booked.'),
          h('p', {}, 'Nothing was charged. Please pick other seats.')),
        h('p', {}, h('a', { class: 'btn btn--primary', href: `/events/${booking.event_id}`, dataset: { link: '' } }, 'Back to the seat map'))));
      return;
    }
    setTitle('Booking confirmed');
    const heading = h('h1', { id: 'booking-heading', tabindex: '-1' }, 'You’re going!');
    mount(root, h('section', { class: 'card stack', 'aria-labelledby': 'booking-heading', id: 'confirmation', dataset: { confirmedBy: how } },
      h('div', { class: 'confirmation' },
        h('div', { class: 'confirmation__icon', 'aria-hidden': 'true' }, '✓'),
        heading,
        h('p', {}, `Booking confirmed for ${booking.event_title}.`),
        h('p', { class: 'muted small' }, `Reference ${booking.booking_id.slice(-12).toUpperCase()} · ${dateTime(booking.created_at)} · a copy is on its way to your inbox.`)),
      h('h2', {}, 'Your tickets'),
      h('ul', { class: 'ticket-list' }, booking.tickets.map((t) => h('li', {},
        h('span', {}, h('strong', {}, `Seat ${t.seat_label}`), ' · ', t.class, t.price !== undefined ? ` · ${money(t.price, booking.currency)}` : ''),
        downloadButton(api, t)))),
      h('p', { class: 'spread' }, h('span', {}, 'Total'), h('strong', {}, money(booking.total, booking.currency))),
      h('p', {}, h('a', { href: '/me/tickets', dataset: { link: '' } }, 'All my tickets'))));
    if (how !== 'load') {
      heading.focus();
      announce('Your booking is confirmed.');
      toast('Booking confirmed! Your tickets are ready.', 'success');
    }
  }

  async function refreshBooking(how) {
    try {
      booking = await api.get(`/api/bookings/${encodeURIComponent(bookingId)}`, { signal });
      if (booking.status !== 'pending') finish(how);
    } catch (err) {
      if (err.name === 'AbortError') return;
    }
  }

  function finish(how) {
    if (done) return;
    done = true;
    clearTimeout(timer);
    paint(how);
  }

  async function poll() {
    if (done) return;
    await refreshBooking('poll');
    if (!done) timer = setTimeout(poll, push.connected ? POLL_WITH_SOCKET_MS : POLL_WITHOUT_SOCKET_MS);
  }

  paint('load');
  if (booking.status !== 'pending') return;

  const onPush = (message) => {
    if (message.booking_id !== bookingId || done) return;
    if (message.type === 'booking.confirmed' || message.type === 'booking.rejected') refreshBooking('push');
  };
  const unsubscribe = push.subscribe(onPush);
  onCleanup(() => {
    unsubscribe();
    clearTimeout(timer);
    done = true;
  });
  const early = push.last(bookingId);
  if (early) onPush(early);
  push.connect();
  timer = setTimeout(poll, push.connected ? POLL_WITH_SOCKET_MS : POLL_WITHOUT_SOCKET_MS);
}
