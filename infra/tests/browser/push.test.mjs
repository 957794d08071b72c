// The browser's push socket (ticketing-api/web/js/push.js) against a scripted server: after a
// token_expired close it reconnects soon with a fresh token; failures back off (growing, with
// jitter) instead of looping; a ban or a logout ends the reconnecting; opened() (checkout's wait
// for the socket) answers at the open, the close or its time limit. Needs no stack: the
// WebSocket, fetch and the clock are fakes.
//
//   node --test infra/tests/browser/push.test.mjs

import { test, mock, beforeEach, afterEach } from 'node:test';
import assert from 'node:assert/strict';

class FakeSocket {
  static CONNECTING = 0;
  static OPEN = 1;
  static CLOSING = 2;
  static CLOSED = 3;

  constructor(url) {
    this.url = new URL(url);
    this.readyState = FakeSocket.CONNECTING;
    this.listeners = {};
    sockets.push(this);
  }

  addEventListener(type, fn) {
    (this.listeners[type] ||= []).push(fn);
  }

  fire(type, event = {}) {
    for (const fn of this.listeners[type] || []) fn(event);
  }

  get token() {
    return this.url.searchParams.get('access_token');
  }

  /** The server accepts the handshake. */
  accept() {
    this.readyState = FakeSocket.OPEN;
    this.fire('open');
  }

  /** The server (or the network) ends it with `code`. */
  end(code) {
    this.readyState = FakeSocket.CLOSED;
    this.fire('close', { code });
  }

  close() {
    if (this.readyState < FakeSocket.CLOSING) this.end(1005);
  }
}

let sockets = [];
let refreshes = 0;
/** What POST /api/auth/refresh does next: 'ok', 'refused', or a promise to wait on. */
let refreshAnswer = 'ok';

globalThis.location = { protocol: 'http:', host: 'tickets.test' };
globalThis.WebSocket = FakeSocket;
globalThis.fetch = async (path) => {
  assert.equal(path, '/api/auth/refresh');
  refreshes += 1;
  const n = refreshes;
  if (refreshAnswer instanceof Promise) await refreshAnswer;
  if (refreshAnswer === 'refused') return { ok: false, json: async () => ({}) };
  return { ok: true, json: async () => ({ access_token: `fresh-${n}` }) };
};

const { push, CLOSE_TOKEN_EXPIRED, CLOSE_BANNED } = await import('../../../ticketing-api/web/js/push.js');
const { setAccessToken } = await import('../../../ticketing-api/web/js/api.js');

/** Lets pending promises (a refresh, its JSON) settle, and api.js's refresh slot clear. */
async function settle() {
  for (let i = 0; i < 5; i += 1) {
    await new Promise((resolve) => setImmediate(resolve));
    mock.timers.tick(0);
  }
}

async function advance(ms) {
  mock.timers.tick(ms);
  await settle();
}

beforeEach(() => {
  mock.timers.enable({ apis: ['setTimeout', 'Date'], now: 1_700_000_000_000 });
  // The low end of the jitter, so the waits are exact.
  mock.method(Math, 'random', () => 0);
  sockets = [];
  refreshes = 0;
  refreshAnswer = 'ok';
  setAccessToken('first');
});

afterEach(() => {
  push.disconnect();
  mock.timers.reset();
  mock.restoreAll();
});

test('at token_expired it reconnects within about a second with a fresh token', async () => {
  push.connect();
  await settle();
  assert.equal(sockets.length, 1);
  assert.equal(sockets[0].token, 'first');
  sockets[0].accept();
  await advance(15 * 60 * 1000);

  sockets[0].end(CLOSE_TOKEN_EXPIRED);
  await advance(249);
  assert.equal(sockets.length, 1, 'not at once');
  await advance(1);
  assert.equal(sockets.length, 2, 'back within the jittered pause');
  assert.equal(refreshes, 1);
  assert.equal(sockets[1].token, 'fresh-1');
});

test('at token_expired it takes the token another request already refreshed', async () => {
  push.connect();
  await settle();
  sockets[0].accept();
  await advance(15 * 60 * 1000);
  setAccessToken('refreshed-by-a-request');
  sockets[0].end(CLOSE_TOKEN_EXPIRED);
  await advance(250);
  assert.equal(refreshes, 0);
  assert.equal(sockets[1].token, 'refreshed-by-a-request');
});

test('a server that accepts and drops at once is retried with growing backoff, not in a loop', async () => {
  push.connect();
  await settle();
  // 2 s doubling to 30 s, times 0.8 (the low end of the jitter).
  const waits = [1600, 3200, 6400, 12800, 24000, 24000];
  for (const [i, wait] of waits.entries()) {
    const current = sockets.at(-1);
    current.accept();
    // Even a token_expired close right after opening counts as a failure here.
    current.end(i % 2 ? CLOSE_TOKEN_EXPIRED : 1011);
    await advance(wait - 1);
    assert.equal(sockets.length, i + 1, `no new socket before ${wait} ms`);
    await advance(1);
    assert.equal(sockets.length, i + 2, `a new socket at ${wait} ms`);
  }
  // Each retry took a fresh token (the last one may have been the trouble).
  assert.equal(refreshes, waits.length);
});

test('refused handshakes back off too, and a healthy socket resets the backoff', async () => {
  push.connect();
  await settle();
  sockets[0].end(1006); // 429 too_many_connections: the browser sees only 1006
  await advance(1600);
  sockets[1].end(1006);
  await advance(3200);
  assert.equal(sockets.length, 3);
  sockets[2].accept();
  await advance(60 * 1000);
  sockets[2].end(1006);
  await advance(1600);
  assert.equal(sockets.length, 4, 'the backoff starts afresh after a healthy minute');
});

test('a ban ends the reconnecting', async () => {
  push.connect();
  await settle();
  sockets[0].accept();
  sockets[0].end(CLOSE_BANNED);
  await advance(10 * 60 * 1000);
  assert.equal(sockets.length, 1);
  assert.equal(refreshes, 0);
});

test('after logout nothing reconnects, even from a pending retry or refresh', async () => {
  push.connect();
  await settle();
  sockets[0].accept();
  sockets[0].end(1006);
  push.disconnect();
  await advance(10 * 60 * 1000);
  assert.equal(sockets.length, 1, 'the pending retry was cancelled');

  // Logged out while a refresh is on its way.
  setAccessToken(null);
  let answer;
  refreshAnswer = new Promise((resolve) => {
    answer = resolve;
  });
  push.connect();
  await settle();
  assert.equal(refreshes, 1);
  push.disconnect();
  answer();
  await advance(10 * 60 * 1000);
  assert.equal(sockets.length, 1, 'the refresh came back to a logged-out tab');
});

test('a refused refresh (logged out elsewhere) stops the retries', async () => {
  push.connect();
  await settle();
  sockets[0].accept();
  refreshAnswer = 'refused';
  sockets[0].end(1006);
  await advance(10 * 60 * 1000);
  assert.equal(sockets.length, 1);
  assert.equal(refreshes, 1);
});

test('opened() answers at once when open, and otherwise at the open, the close or the time limit', async () => {
  push.connect();
  await settle();
  const answers = [];
  const ask = (what, ms) => push.opened(ms).then((open) => answers.push([what, open]));
  ask('at the open', 2000);
  sockets[0].accept();
  await settle();
  ask('already open', 2000);
  await settle();

  sockets[0].end(1006); // reconnects in 1.6 s
  ask('at the time limit', 1000);
  await advance(1000);
  ask('at the close', 5000);
  await advance(600);
  assert.equal(sockets.length, 2);
  sockets[1].end(1006);
  await settle();
  assert.deepEqual(answers, [['at the open', true], ['already open', true], ['at the time limit', false], ['at the close', false]]);
});
