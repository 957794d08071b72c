// One booking. A queued (high-demand) booking starts `pending`, and its outcome comes by the
// notifier's push. While the socket is open the page does not poll: it reads the booking on
// load, on a push about it, and whenever the socket (re)opens (a push may have been missed while
// it was down), and once after PUSH_SILENCE_MS without news (a push the notifier lost). Without
// a socket (closed, refused, or not open within SOCKET_GRACE_MS) it polls, backing off as the
// socket's reconnects do, until the socket is back.

import { h, mount, money, dateTime, spinner, errorBox, toast, announce } from '../../ui.js';
import { backoff } from '../../push.js';
import { downloadButton } from './tickets.js';
import { store } from '../../store.js';

/** How long the page waits for a socket that is not open before it starts polling. */
const SOCKET_GRACE_MS = 3000;
/** With the socket open, one read after this long without news: a push the notifier dropped
 * (published while its consumer reconnected) must not leave the fan on "pending" for good. */
const PUSH_SILENCE_MS = 30000;

export async function render(ctx) {
  const { root, api, params, push, signal, onCleanup, setTitle } = ctx;
  const bookingId = params.id;
  // Straight from checkout, a queued booking is known to be pending: shown at once.
  let booking = store.takeHandoff(bookingId);
  const handedOff = booking?.status === 'pending';
  let settled = false; // confirmed or rejected, and painted
  let timer = null; // the next poll, while one is due
  let polls = 0; // since the socket was last open: the backoff's step
  let silence = null; // with the socket open: the read due after PUSH_SILENCE_MS without news

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

  /** Reads the booking; once it is confirmed or rejected, paints it and stops. */
  async function read(how) {
    const fresh = await api.get(`/api/bookings/${encodeURIComponent(bookingId)}`, { signal });
    if (settled) return;
    booking = fresh;
    if (booking.status === 'pending') return;
    settled = true;
    clearTimeout(timer);
    clearTimeout(silence);
    paint(how);
  }

  /** The next poll, after `delay` or the next backoff step, unless one is already due. */
  function pollLater(delay) {
    if (settled || timer !== null) return;
    timer = setTimeout(async () => {
      timer = null;
      const ok = await read('poll').then(() => true, (err) => err.name === 'AbortError');
      if (!ok || !push.connected) pollLater();
    }, delay ?? backoff(++polls));
  }

  /** A read on a push or a reconnection; a failed one is retried by polling. */
  function check(how = 'push') {
    read(how).catch((err) => {
      if (err.name !== 'AbortError') pollLater();
    });
  }

  /** (Re)arms the read after a silence of the open socket. */
  function listen() {
    clearTimeout(silence);
    silence = setTimeout(() => {
      if (settled) return;
      check('poll');
      listen();
    }, PUSH_SILENCE_MS);
  }

  function onPush(message) {
    if (settled) return;
    if (message.type === 'socket.open') {
      clearTimeout(timer);
      timer = null;
      polls = 0;
      check();
      listen();
    } else if (message.type === 'socket.closed') {
      clearTimeout(silence);
      pollLater();
    } else if (message.booking_id === bookingId) {
      check();
    }
  }

  // Subscribed before the first read: a push or a reconnection during it is not missed.
  const unsubscribe = push.subscribe(onPush);
  const stop = () => {
    unsubscribe();
    clearTimeout(timer);
    clearTimeout(silence);
    settled = true;
  };
  onCleanup(stop);
  push.connect();
  if (handedOff) paint('load');
  else mount(root, spinner('Loading your booking…'));
  try {
    // Fresh from checkout, an outcome is news (told, not just shown): by push if the socket
    // has already brought it, else by this read.
    await read(!handedOff ? 'load' : push.last(bookingId) ? 'push' : 'checkout');
  } catch (err) {
    if (err.name === 'AbortError') return;
    if (!handedOff) {
      stop();
      mount(root, h('h1', {}, 'Booking'), errorBox(err, () => render(ctx)));
      return;
    }
    pollLater();
  }
  if (settled) return;
  if (!handedOff) paint('load');
  if (push.connected) listen();
  else pollLater(SOCKET_GRACE_MS);
}
