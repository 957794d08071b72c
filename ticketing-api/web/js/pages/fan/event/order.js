// The fan's order on the event page: the hold (kept in the store across reloads), whether a
// request is out, the waiting room's admission, and the actions: hold seats, release them,
// check out. Errors become kind toasts here. The panel repaints through `repaint()` after
// every change; the seat map is attached once it exists (`order.seatMap`).
//
// A queued booking's outcome comes by the notifier's push, so checkout opens the socket first
// (or waits a moment for it) and the confirmation cannot outrun it.

import { toast, toastError, errorMessage, announce, uuid } from '../../../ui.js';
import { store } from '../../../store.js';

/** "seat A-1-2 was" or "seats A-1-2, A-1-3 were", for "… just taken by someone else". */
export function takenSeats(labels) {
  return labels.length === 1 ? `seat ${labels[0]} was` : `seats ${labels.join(', ')} were`;
}

/** How long checkout waits for the push socket to open; without it the booking page polls. */
const SOCKET_WAIT_MS = 2000;

export function createOrder({ eventId, event, api, session, navigate, push, signal, repaint }) {
  const classByName = new Map(event.classes.map((c) => [c.name, c]));
  const needsQueue = event.high_demand;
  const admissionToken = () => store.admission(eventId)?.token || null;
  const gateHeaders = () => (admissionToken() ? { 'X-Admission-Token': admissionToken() } : {});

  const order = {
    hold: null, // {hold_id, seat_ids, seats, expires_at, idempotency_key}
    busy: false,
    seatMap: null,
    countdownTimer: null,
    needsQueue,
    admitted: () => !needsQueue || Boolean(admissionToken()),
    holdTotal: () => (order.hold?.seats || []).reduce((sum, s) => sum + (classByName.get(s.class)?.price || 0), 0),
    stopCountdown: () => clearInterval(order.countdownTimer),
    setHold,
    clearHold,
    placeHold,
    release,
    checkout,
  };

  function requireLogin() {
    if (session.loggedIn) return false;
    toast('Log in to buy tickets.', 'info');
    navigate(`/login?next=${encodeURIComponent(location.pathname)}`);
    return true;
  }

  async function handleError(err, where) {
    const { seatMap } = order;
    if (err.name === 'AbortError') return;
    if (err.error === 'seats_unavailable' && err.body?.seat_ids?.length && seatMap) {
      const labels = seatMap.markTaken(err.body.seat_ids);
      toast(`Sorry, ${takenSeats(labels)} just taken by someone else. Please pick another.`, 'error');
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
    order.hold = null;
    store.setHold(eventId, null);
    order.stopCountdown();
    order.seatMap?.setMine([]);
    repaint();
  }

  function setHold(placed, key) {
    order.hold = { ...placed, idempotency_key: key || placed.idempotency_key || uuid() };
    store.setHold(eventId, order.hold);
    order.seatMap?.clearSelection();
    order.seatMap?.setMine(order.hold.seat_ids);
    repaint();
  }

  async function placeHold(body) {
    if (requireLogin() || order.busy) return;
    if (!order.admitted()) {
      navigate(`/events/${eventId}/queue`);
      return;
    }
    order.busy = true;
    repaint();
    try {
      const placed = await api.post(`/api/events/${eventId}/holds`, body, { headers: gateHeaders(), signal });
      setHold(placed);
      toast(`Held ${placed.seats.length === 1 ? 'your seat' : `${placed.seats.length} seats`} for you. Check out before the timer runs out.`, 'success');
      document.getElementById('order-heading')?.focus();
    } catch (err) {
      err.request = body;
      await handleError(err, body.class ? 'best' : 'hold');
    } finally {
      order.busy = false;
      repaint();
    }
  }

  async function release() {
    if (!order.hold || order.busy) return;
    order.busy = true;
    try {
      await api.del(`/api/holds/${order.hold.hold_id}`, { signal });
    } catch (err) {
      if (err.status !== 404) {
        order.busy = false;
        await handleError(err, 'release');
        return;
      }
    }
    order.busy = false;
    clearHold();
    order.seatMap?.poll();
    toast('Your seats were released.', 'info');
  }

  async function checkout() {
    if (!order.hold || order.busy) return;
    order.busy = true;
    repaint();
    try {
      push.connect();
      await push.opened(SOCKET_WAIT_MS);
      const booking = await api.post(`/api/events/${eventId}/registrations`, { hold_id: order.hold.hold_id }, {
        headers: { ...gateHeaders(), 'Idempotency-Key': order.hold.idempotency_key },
        signal,
      });
      store.setHold(eventId, null);
      store.handOff(booking);
      order.hold = null;
      order.stopCountdown();
      navigate(`/bookings/${booking.booking_id}`);
    } catch (err) {
      order.busy = false;
      await handleError(err, 'checkout');
      repaint();
      return;
    }
    order.busy = false;
  }

  return order;
}
