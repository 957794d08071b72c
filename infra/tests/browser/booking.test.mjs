// The booking page learns a queued booking's outcome by push, not by polling. With the
// notifier's socket up it reads the booking once on arrival and once on the push, and nothing in
// between; with the socket refused it polls, backing off, and stops once the socket is back
// (one read then, for a push it may have missed); a push lost with the socket up is made good
// by one read after 30 s of silence. The worker's confirmation is held back by a
// real row lock on the event (lib.mjs lockEvent), so the test decides when the push comes.
//
//   node --test infra/tests/browser/booking.test.mjs     (against the stack at GATEWAY_PORT)

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, openAs, newFan, newEvent, lockEvent, screenshot, eventually, BASE } from './lib.mjs';

let browser;
const MOBILE = { width: 375, height: 812, mobile: true };
const DESKTOP = { width: 1280, height: 800 };
/** Longer than the grace before polling (3 s) and the old poll with a socket (5 s). */
const QUIET_MS = 7000;

before(async () => {
  const health = await fetch(`${BASE}/api/healthz`).catch(() => null);
  assert.ok(health?.ok, `the stack is not up at ${BASE} (infra/dev up)`);
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

/** The fan's admission token for a high-demand event, through the waiting room's API. */
async function admission(fan, eventId) {
  const { data: joined } = await fan.post(`/api/queue/${eventId}/join`, undefined, { expect: 200 });
  let status = joined;
  await eventually(async () => {
    if (status.state !== 'admitted') {
      ({ data: status } = await fan.get(`/api/queue/${eventId}/status`, { headers: { 'X-Queue-Token': joined.queue_token }, expect: 200 }));
    }
    return status.state === 'admitted';
  }, { what: 'the admission' });
  return status.admission_token;
}

/** A fan's browser on a high-demand event, admitted, holding seat A-1-1, at the checkout button. */
async function readyToCheckOut(size, { beforeLoad } = {}) {
  const event = await newEvent({ title: 'Push', highDemand: true });
  const fan = await newFan('pushed');
  const token = await admission(fan, event.id);
  const view = await openAs(browser, fan, size);
  await view.context.addInitScript(([id, t]) => sessionStorage.setItem(`admission:${id}`, JSON.stringify({ token: t })), [event.id, token]);
  await beforeLoad?.(view.page);
  await view.page.goto(`/events/${event.id}`);
  await view.page.locator('.seat-btn[data-seat="A-1-1"]').click();
  await view.page.locator('#hold-selected').click();
  await view.page.locator('#checkout').waitFor();
  return { ...view, event };
}

/** Every GET /api/bookings/… the page sends, as playwright sees them. */
function bookingReads(page) {
  const reads = [];
  page.on('request', (request) => {
    if (request.method() === 'GET' && new URL(request.url()).pathname.startsWith('/api/bookings/')) reads.push(request);
  });
  return reads;
}

/** What the page's push socket tells its subscribers, stamped with the page's clock. */
async function socketLog(page) {
  await page.evaluate(async () => {
    const { push } = await import('/js/push.js');
    window.socketLog = [];
    push.subscribe((message) => window.socketLog.push({ type: message.type, at: Date.now() }));
  });
  return () => page.evaluate(() => window.socketLog);
}

const socketOpen = (page) => page.evaluate(async () => (await import('/js/push.js')).push.connected);

/** When each request left the browser (wall clock, ms): known once it has been answered. */
async function sentAt(requests) {
  await Promise.all(requests.map((r) => r.response()));
  return requests.map((r) => r.timing().startTime);
}

function noProblems(page) {
  assert.deepEqual(page.problems, [], 'no script errors in the page');
}

test('with the socket up, the booking page reads the booking once on arrival and once on the push, and never polls', async () => {
  const { context, page, event } = await readyToCheckOut(MOBILE);
  try {
    const reads = bookingReads(page);
    const log = await socketLog(page);
    assert.ok(await socketOpen(page), 'the socket is open before registering');
    const lock = await lockEvent(event.id);
    try {
      await page.locator('#checkout').click();
      await page.waitForURL(/\/bookings\//);
      await page.locator('[data-booking-status="pending"]').waitFor();
      await eventually(() => reads.length === 1, { what: 'the read on arrival' });
      await page.waitForTimeout(QUIET_MS);
      assert.equal(reads.length, 1, 'no polling while the socket is up');
      await screenshot(page, 'fan-booking-pending');
    } finally {
      await lock.release();
    }

    const confirmation = page.locator('#confirmation');
    await confirmation.waitFor({ timeout: 20000 });
    assert.equal(await confirmation.getAttribute('data-confirmed-by'), 'push');
    const pushed = (await log()).find((m) => m.type === 'booking.confirmed');
    assert.ok(pushed, 'the push came');
    assert.deepEqual((await sentAt(reads)).map((at) => (at < pushed.at ? 'before' : 'after')), ['before', 'after'],
      'one read before the push, one after it');
    await screenshot(page, 'fan-booking-pushed');
    noProblems(page);
  } finally {
    await context.close();
  }
});

test('with the socket refused, the booking page polls, backing off, and stops once the socket is back', async () => {
  // Every socket is refused (closed before it opens) until `refuse` is turned off; then they
  // reach the real notifier through playwright.
  let refuse = true;
  const { context, page, event } = await readyToCheckOut(DESKTOP, {
    beforeLoad: (p) => p.routeWebSocket(/\/ws\?/, (ws) => (refuse ? ws.close() : ws.connectToServer())),
  });
  try {
    const reads = bookingReads(page);
    const log = await socketLog(page);
    const lock = await lockEvent(event.id);
    try {
      await page.locator('#checkout').click();
      await page.waitForURL(/\/bookings\//);
      await page.locator('[data-booking-status="pending"]').waitFor();
      // The read on arrival, then polls: after 3 s of grace (or 2 s after a refusal), then
      // 2 s, 4 s, 8 s ... (±20 %), as the socket's reconnects back off.
      await eventually(() => reads.length >= 4, { timeout: 25000, what: 'polls without a socket' });
      const sent = await sentAt(reads.slice(0, 4));
      const gaps = sent.slice(1).map((at, i) => at - sent[i]);
      const shown = gaps.map((g) => `${(g / 1000).toFixed(1)} s`).join(', ');
      console.log(`# without a socket: the read on arrival, then polls ${shown} apart`);
      assert.ok(Math.min(...gaps) >= 1500, `polls are seconds apart (${shown})`);
      assert.ok(gaps[2] > gaps[0], `polls back off (${shown})`);
      await screenshot(page, 'fan-booking-polling');

      refuse = false;
      // The socket's own backoff decides when it tries again: up to half a minute.
      await eventually(() => socketOpen(page), { timeout: 45000, what: 'the socket to be back' });
      const opened = (await log()).filter((m) => m.type === 'socket.open').at(-1);
      await page.waitForTimeout(QUIET_MS);
      const afterOpen = (await sentAt(reads)).filter((at) => at >= opened.at);
      assert.equal(afterOpen.length, 1, 'one read when the socket is back, then no polling');
    } finally {
      await lock.release();
    }

    const confirmation = page.locator('#confirmation');
    await confirmation.waitFor({ timeout: 20000 });
    assert.equal(await confirmation.getAttribute('data-confirmed-by'), 'push');
    noProblems(page);
  } finally {
    await context.close();
  }
});

test('with the socket up but the push lost, the booking page reads it once after a silence, not before', async () => {
  // The notifier's messages reach the page except the booking's own: a push dropped as one
  // published while the notifier's consumer reconnected would be.
  const { context, page, event } = await readyToCheckOut(MOBILE, {
    beforeLoad: (p) => p.routeWebSocket(/\/ws\?/, (ws) => {
      const server = ws.connectToServer();
      server.onMessage((message) => {
        if (!String(message).includes('"booking.')) ws.send(message);
      });
    }),
  });
  try {
    const reads = bookingReads(page);
    assert.ok(await socketOpen(page), 'the socket is open before registering');
    // Held back until the page has read it pending; then confirmed, and the push is lost.
    const lock = await lockEvent(event.id);
    try {
      await page.locator('#checkout').click();
      await page.waitForURL(/\/bookings\//);
      await page.locator('[data-booking-status="pending"]').waitFor();
      await eventually(() => reads.length === 1, { what: 'the read on arrival' });
    } finally {
      await lock.release();
    }
    // Nothing is read until the socket has been silent for 30 s.
    await page.waitForTimeout(QUIET_MS);
    assert.equal(reads.length, 1, 'no polling while the socket is up');
    const confirmation = page.locator('#confirmation');
    await confirmation.waitFor({ timeout: 40000 });
    assert.equal(await confirmation.getAttribute('data-confirmed-by'), 'poll');
    assert.equal(reads.length, 2, 'one read after the silence');
    noProblems(page);
  } finally {
    await context.close();
  }
});
