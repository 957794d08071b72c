// The notifier's WebSocket (GET /ws?access_token=...): booking.confirmed / booking.rejected for
// the logged-in fan. One socket per tab. Messages are kept by booking id, so a page opened after
// the push still sees it.
//
// How it ends and comes back:
// - the server closes it with 4001 (token_expired) at the access token's expiry: take a fresh
//   token (refreshing unless another request already did) and reconnect after a short jittered
//   pause;
// - 4003 (banned): stop, no reconnect;
// - anything else (a refused handshake, 429 at the per-user cap, a network drop, a restart):
//   reconnect with exponential backoff and jitter, 2 s up to 30 s. The backoff only resets once
//   a socket has stayed open a while, so a server that accepts and drops at once is not
//   hammered;
// - after disconnect() (logout), nothing reconnects: every pending step checks that it still
//   belongs to the current connect().

import { getAccessToken, refresh } from './api.js';

/** The server's application close codes (notifier/src/push.rs). */
export const CLOSE_TOKEN_EXPIRED = 4001;
export const CLOSE_BANNED = 4003;
/** A socket open this long counts as healthy: the next failure starts the backoff afresh. */
const STABLE_MS = 10000;

const listeners = new Set();
const seen = new Map(); // booking_id -> last message
let socket = null;
let wanted = false;
let generation = 0; // bumped by connect() and disconnect(); stale steps see a different one
let attempt = 0;
let timer = null;
let lastToken = null; // the token the current or last socket was opened with
let stale = false; // the server said that token expired

function url(token) {
  const scheme = location.protocol === 'https:' ? 'wss:' : 'ws:';
  return `${scheme}//${location.host}/ws?access_token=${encodeURIComponent(token)}`;
}

function busy() {
  return socket !== null && socket.readyState <= WebSocket.OPEN;
}

/** Milliseconds before reconnection attempt `n` (1, 2, ...): 2 s doubling to 30 s, ±20 %. */
export function backoff(n) {
  return Math.min(30000, 1000 * 2 ** Math.min(n, 5)) * (0.8 + Math.random() * 0.4);
}

async function open() {
  clearTimeout(timer);
  timer = null;
  if (!wanted || busy()) return;
  const mine = generation;
  let token = getAccessToken();
  // A fresh token when there is none, after a failure, or when the server said this one
  // expired and nobody has replaced it since.
  if (!token || attempt > 0 || (stale && token === lastToken)) {
    const fresh = await refresh();
    // null: the refresh cookie was refused (logged out, banned); wait for the next connect().
    if (fresh === null) return;
    token = fresh || token;
  }
  if (!token || !wanted || mine !== generation || busy()) return;
  stale = false;
  lastToken = token;
  const ws = new WebSocket(url(token));
  socket = ws;
  let openedAt = null;
  ws.addEventListener('open', () => {
    openedAt = Date.now();
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
  ws.addEventListener('close', (event) => {
    if (socket === ws) socket = null;
    emit({ type: 'socket.closed', code: event.code });
    if (!wanted || mine !== generation) return;
    if (event.code === CLOSE_BANNED) return;
    const stable = openedAt !== null && Date.now() - openedAt >= STABLE_MS;
    if (stable) attempt = 0;
    let delay;
    if (event.code === CLOSE_TOKEN_EXPIRED && stable) {
      // The normal end of a token's life: back soon, spread over a second.
      stale = true;
      delay = 250 + Math.random() * 1000;
    } else {
      stale = event.code === CLOSE_TOKEN_EXPIRED;
      attempt += 1;
      delay = backoff(attempt);
    }
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
    if (!wanted) {
      wanted = true;
      generation += 1;
      attempt = 0;
    }
    open();
  },
  disconnect() {
    wanted = false;
    generation += 1;
    clearTimeout(timer);
    timer = null;
    attempt = 0;
    stale = false;
    lastToken = null;
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
  /** Resolves true once the socket is open, false when it closes or `ms` pass first. */
  opened(ms) {
    if (this.connected) return Promise.resolve(true);
    return new Promise((resolve) => {
      const end = (open) => {
        clearTimeout(timeout);
        unsubscribe();
        resolve(open);
      };
      const timeout = setTimeout(() => end(false), ms);
      const unsubscribe = this.subscribe((message) => {
        if (message.type === 'socket.open') end(true);
        if (message.type === 'socket.closed') end(false);
      });
    });
  },
};
