// What a fan's tab remembers between pages and reloads: the waiting room's queue token, the
// admission token and the live hold, per event. sessionStorage: this tab only, gone when it
// closes, cleared at logout.

function read(key) {
  try {
    return JSON.parse(sessionStorage.getItem(key));
  } catch {
    return null;
  }
}

function write(key, value) {
  if (value === null || value === undefined) sessionStorage.removeItem(key);
  else sessionStorage.setItem(key, JSON.stringify(value));
}

// The answer of a registration, handed from the event page to the booking page in memory, so
// a queued booking shows "pending" at once and its confirmation comes by push.
const handoffs = new Map();

export const store = {
  handOff: (booking) => handoffs.set(booking.booking_id, booking),
  takeHandoff: (bookingId) => {
    const booking = handoffs.get(bookingId) || null;
    handoffs.delete(bookingId);
    return booking;
  },
  queueToken: (eventId) => read(`queue:${eventId}`),
  setQueueToken: (eventId, token) => write(`queue:${eventId}`, token),
  admission: (eventId) => read(`admission:${eventId}`),
  setAdmission: (eventId, token) => write(`admission:${eventId}`, token),
  hold: (eventId) => read(`hold:${eventId}`),
  setHold: (eventId, hold) => write(`hold:${eventId}`, hold),
};
