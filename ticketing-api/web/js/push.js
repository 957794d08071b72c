// The notifier's WebSocket (GET /ws?access_token=...): booking.confirmed / booking.rejected for
// the logged-in fan. One socket per tab, reconnecting with backoff (a fresh access token each
// time). Messages are kept by booking id, so a page opened after the push still sees it.

import { getAccessToken, refresh } from './api.js';

const listeners = new Set();
const seen = new Map(); // booking_id -> last message
let socket = null;
let wanted = false;
let attempt = 0;
let timer = null;

function url(token) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws?access_token=${encodeURIComponent(token)}`;
}

async function open() {
  clearTimeout(timer);
  if (!wanted || (socket && socket.readyState <= WebSocket.OPEN)) return;
  let token = getAccessToken();
  if (!token || attempt > 0) token = (await refresh()) || token;
  if (!token || !wanted) return;
  const ws = new WebSocket(url(token));
  socket = ws;
  ws.addEventListener('open', () => {
    attempt = 0;
    emit({ type: 'socket.open' });
  });
  ws.addEventListener('message', (event) => {
    let message;
    try {
      message = JSON.parse(event.data);
    } catch {
      return;
    }
    if (message?.booking_id) seen.set(message.booking_id, message);
    emit(message);
  });
  ws.addEventListener('close', () => {
    if (socket === ws) socket = null;
    emit({ type: 'socket.closed' });
    if (!wanted) return;
    attempt += 1;
    const delay = Math.min(30000, 1000 * 2 ** Math.min(attempt, 5)) * (0.8 + Math.random() * 0.4);
    timer = setTimeout(open, delay);
  });
}

function emit(message) {
  for (const fn of listeners) {
    try {
      fn(message);
    } catch (err) {
      console.error(err);
    }
  }
}

export const push = {
  connect() {
    wanted = true;
    open();
  },
  disconnect() {
    wanted = false;
    clearTimeout(timer);
    if (socket) socket.close();
    socket = null;
    seen.clear();
  },
  get connected() {
    return socket?.readyState === WebSocket.OPEN;
  },
  /** The last push about this booking, if one came. */
  last(bookingId) {
    return seen.get(bookingId) || null;
  },
  /** fn(message) for every push; returns an unsubscribe function. */
  subscribe(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
};
