// The browser UI in real Chromium against the running dev stack (http://127.0.0.1:8080).
//
//   node infra/tests/browser/run.mjs            (infra/tests/30-browser.sh installs what it needs)
//
// Each test makes its own organizer data and fans through the API. Screenshots of each fan
// page at 375×812 and 1280×800 land in .run/screenshots/.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import {
  launch, openAs, newFan, newEvent, seatIds, screenshot, eventually, readPdfHead, email, Client, BASE,
} from './lib.mjs';

let browser;
const MOBILE = { width: 375, height: 812, mobile: true };
const DESKTOP = { width: 1280, height: 800 };

before(async () => {
  const health = await fetch(`${BASE}/api/healthz`).catch(() => null);
  assert.ok(health?.ok, `the stack is not up at ${BASE} (infra/dev up)`);
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

function seatButton(page, label) {
  return page.locator(`.seat-btn[data-seat="${label}"]`);
}

async function pickRow(page, section, row) {
  await page.selectOption('#pick-section', section);
  await page.selectOption('#pick-row', String(row));
}

async function mapState(page, label) {
  return page.evaluate((l) => document.querySelector('.seatmap')?.seatMap?.stateOf(l) ?? null, label);
}

/** Controls without an accessible name (label, aria-label(ledby) or text), as short descriptions. */
async function unlabelled(page) {
  return page.evaluate(() => [...document.querySelectorAll('button, input, select, textarea, canvas[tabindex], a[href]')]
    .filter((el) => !(el.labels?.length || el.getAttribute('aria-label') || el.getAttribute('aria-labelledby') || el.textContent.trim()))
    .map((el) => `${el.tagName.toLowerCase()}#${el.id || '?'}`));
}

function noProblems(page) {
  assert.deepEqual(page.problems, [], 'no script errors in the page');
}

test('a fan signs up, waits in the waiting room, books through the queued path and downloads the PDF', async () => {
  // A high-demand event whose sale opens in a few seconds: the fan sees the pre-queue first.
  const event = await newEvent({ title: 'Journey', sections: [{ name: 'A', rows: 3, seats_per_row: 8 }], opens: 12, highDemand: true });
  const { context, page } = await openAs(browser, null, MOBILE);
  try {
    await page.goto('/');
    await page.getByRole('link', { name: 'Sign up' }).click();
    await page.getByLabel('Name').fill('Journey Fan');
    await page.getByLabel('Email').fill(email('journey'));
    await page.getByLabel('Password').fill('journey-pass-123');
    await page.getByRole('button', { name: 'Create account' }).click();
    await page.getByRole('button', { name: 'Log out' }).waitFor();

    // The event list finds the event by search.
    await page.getByLabel('Search events').fill(event.title);
    await page.getByRole('button', { name: 'Search' }).click();
    await page.getByRole('link', { name: event.title }).click();
    await page.getByRole('heading', { level: 1, name: event.title }).waitFor();
    await page.locator('#order-panel').getByRole('link', { name: 'Join the waiting room' }).click();

    // Pre-queue: countdown to the opening, then the fan is admitted and sent to the seats.
    await page.locator('#queue-countdown').waitFor({ timeout: 5000 });
    assert.match(await page.locator('#queue-live').textContent(), /pre-queue|number/);
    await page.locator('.seatmap').waitFor({ timeout: 30000 });
    assert.equal(new URL(page.url()).pathname, `/events/${event.id}`);
    const admission = await page.evaluate((id) => JSON.parse(sessionStorage.getItem(`admission:${id}`)), event.id);
    assert.equal(admission.via, 'push', 'admitted through the server-sent events');

    // Pick two seats by row (the keyboard-accessible list), hold them, check out.
    await pickRow(page, 'A', 2);
    await seatButton(page, 'A-2-4').click();
    await seatButton(page, 'A-2-5').click();
    assert.equal(await seatButton(page, 'A-2-4').getAttribute('aria-pressed'), 'true');
    assert.match(await seatButton(page, 'A-2-4').getAttribute('aria-label'), /^Seat A-2-4, selected, €40\.00/);
    await page.locator('#hold-selected').click();
    await page.locator('#hold-countdown').waitFor();
    assert.match(await page.locator('#hold-countdown').textContent(), /^(9|10):\d\d$/);
    assert.equal(await page.locator('#order-total').textContent(), '€80.00');
    await page.locator('#checkout').click();

    // 202 pending, then the confirmation appears by itself: by the WebSocket push, or by the
    // booking page's one read on arrival when the worker was quicker; never by polling
    // (booking.test.mjs counts the reads).
    await page.waitForURL(/\/bookings\//);
    const confirmation = page.locator('#confirmation');
    await confirmation.waitFor({ timeout: 20000 });
    assert.match(await confirmation.getAttribute('data-confirmed-by'), /^(push|checkout)$/, 'confirmed without polling');
    assert.equal(await page.locator('.ticket-list li').count(), 2);

    // The PDF download works: fetched with the Bearer token, handed over as a file.
    const [download] = await Promise.all([
      page.waitForEvent('download'),
      page.getByRole('button', { name: /Download the PDF ticket for seat A-2-4/ }).click(),
    ]);
    assert.equal(download.suggestedFilename(), 'ticket-A-2-4.pdf');
    assert.equal(readPdfHead(await download.path()), '%PDF-');
    await screenshot(page, 'fan-booking-confirmed');

    await page.getByRole('link', { name: 'My tickets' }).first().click();
    await page.locator(`[data-booking]`).first().waitFor();
    assert.match(await page.locator('main').textContent(), new RegExp(event.title));
    noProblems(page);
  } finally {
    await context.close();
  }
});

test('a seat taken in one browser turns held, then sold, in another without a reload', async () => {
  const event = await newEvent({ title: 'Live map', sections: [{ name: 'A', rows: 2, seats_per_row: 6 }] });
  const [alice, bob] = await Promise.all([newFan('alice'), newFan('bob')]);
  const a = await openAs(browser, alice, DESKTOP);
  const b = await openAs(browser, bob, MOBILE);
  try {
    await Promise.all([a.page.goto(`/events/${event.id}`), b.page.goto(`/events/${event.id}`)]);
    await Promise.all([a.page.locator('.seat-btn').first().waitFor(), b.page.locator('.seat-btn').first().waitFor()]);
    assert.equal(await mapState(b.page, 'A-1-3'), 'free');

    await seatButton(a.page, 'A-1-3').click();
    await a.page.locator('#hold-selected').click();
    await a.page.locator('#checkout').waitFor();
    const started = Date.now();
    await eventually(async () => (await mapState(b.page, 'A-1-3')) === 'held', { what: 'A-1-3 held in the other browser' });
    const heldAfter = Date.now() - started;
    assert.equal(await seatButton(b.page, 'A-1-3').getAttribute('data-state'), 'held');

    // A reload keeps the hold (and its countdown).
    await a.page.reload();
    await a.page.locator('#checkout').waitFor();
    assert.equal(await mapState(a.page, 'A-1-3'), 'yours');
    await a.page.locator('#checkout').click();
    await a.page.locator('#confirmation').waitFor();
    await eventually(async () => (await mapState(b.page, 'A-1-3')) === 'sold', { what: 'A-1-3 sold in the other browser' });
    assert.equal(await seatButton(b.page, 'A-1-3').getAttribute('data-state'), 'sold');
    assert.match(await seatButton(b.page, 'A-1-3').getAttribute('aria-label'), /^Seat A-1-3, sold/);
    console.log(`# seat turned held in the other browser after ${heldAfter} ms`);
    noProblems(a.page);
    noProblems(b.page);
  } finally {
    await a.context.close();
    await b.context.close();
  }
});

test('admission required: the fan is sent to the waiting room, which falls back to polling when the push stream fails', async () => {
  const event = await newEvent({ title: 'Polling', highDemand: true });
  const fan = await newFan('poller');
  const { context, page } = await openAs(browser, fan, MOBILE);
  try {
    await page.route((url) => url.pathname.endsWith('/events') && url.pathname.startsWith('/api/queue/'), (route) => route.abort());
    // Without an admission the event page points to the waiting room and holds nothing.
    await page.goto(`/events/${event.id}`);
    await page.locator('#order-panel').getByRole('link', { name: 'Join the waiting room' }).waitFor();
    assert.ok(await page.locator('#best-available').isDisabled());
    // A stale admission token: the API refuses the hold (403) and the fan is sent to queue, kindly.
    await page.evaluate((id) => sessionStorage.setItem(`admission:${id}`, JSON.stringify({ token: 'stale.token.value' })), event.id);
    await page.reload();
    await seatButton(page, 'A-1-1').click();
    await page.locator('#hold-selected').click();
    await page.locator('.toast', { hasText: 'rejoin the waiting room' }).waitFor();
    await page.waitForURL(`**/events/${event.id}/queue`);
    await page.locator('.seatmap').waitFor({ timeout: 20000 });
    const admission = await page.evaluate((id) => JSON.parse(sessionStorage.getItem(`admission:${id}`)), event.id);
    assert.equal(admission.via, 'poll', 'admitted through polling, the stream being down');
    // Admitted, the fan can hold seats with the admission token.
    await seatButton(page, 'A-1-1').click();
    await page.locator('#hold-selected').click();
    await page.locator('#checkout').waitFor();
    noProblems(page);
  } finally {
    await context.close();
  }
});

test('errors are shown kindly: a seat just taken, a hold that expired, 503 and 429, a sold-out class', async () => {
  const event = await newEvent({ title: 'Errors', sections: [{ name: 'A', rows: 1, seats_per_row: 4 }] });
  const ids = await seatIds(event.id);
  const [fan, rival, rival2] = await Promise.all([newFan('kind'), newFan('rival'), newFan('rival2')]);
  const { context, page } = await openAs(browser, fan, MOBILE);
  try {
    await page.goto(`/events/${event.id}`);
    await seatButton(page, 'A-1-1').waitFor();

    // 1. Seat just taken: the fan picks A-1-1; before the map's next poll a rival holds it.
    const statePolls = (url) => url.pathname.endsWith('/seats') && url.searchParams.get('format') === 'state';
    await page.route(statePolls, (route) => route.abort());
    await seatButton(page, 'A-1-1').click();
    await rival.post(`/api/events/${event.id}/holds`, { seat_ids: [ids.get('A-1-1')] }, { expect: 201 });
    await page.locator('#hold-selected').click();
    const taken = page.locator('.toast', { hasText: 'just taken' });
    await taken.waitFor();
    assert.match(await taken.textContent(), /seat A-1-1 was just taken by someone else/);
    assert.equal(await seatButton(page, 'A-1-1').getAttribute('data-state'), 'held');
    assert.ok(await seatButton(page, 'A-1-1').evaluate((el) => el.classList.contains('flash')), 'the taken seat flashes');
    await page.unroute(statePolls);

    // 2. Hold expired: the fan holds A-1-2; it lapses (released behind the page's back) before checkout.
    await seatButton(page, 'A-1-2').click();
    await page.locator('#hold-selected').click();
    await page.locator('#checkout').waitFor();
    const holdId = await page.evaluate((id) => JSON.parse(sessionStorage.getItem(`hold:${id}`)).hold_id, event.id);
    // The fan's session lives in the browser now; borrow its access token for the release.
    const owner = new Client();
    owner.token = await page.evaluate(async () => (await import('/js/api.js')).getAccessToken());
    await owner.del(`/api/holds/${holdId}`, { expect: 204 });
    await page.locator('#checkout').click();
    const expired = page.locator('.toast', { hasText: 'ran out' });
    await expired.waitFor();
    await page.locator('#hold-selected').waitFor(); // back to choosing seats
    assert.equal(await page.locator('#checkout').count(), 0);

    // 3. The gateway's 503 when a service is down, and a 429: kind words, nothing breaks.
    for (const [status, body, words] of [
      [503, { error: 'service_unavailable', message: 'The service is not reachable right now; try again shortly.' }, 'The service is very busy right now. Please try again in 5 seconds.'],
      [429, { error: 'rate_limited', message: 'Too many requests.' }, 'Too many attempts right now. Please try again in 5 seconds.'],
    ]) {
      const holds = (url) => url.pathname.endsWith('/holds');
      await page.route(holds, (route) => route.fulfill({
        status, contentType: 'application/json', headers: { 'Retry-After': '5' }, body: JSON.stringify(body),
      }));
      await page.selectOption('#best-quantity', '1');
      await page.locator('#best-available').click();
      const toast = page.locator('.toast', { hasText: words });
      await toast.waitFor();
      await page.unroute(holds);
    }

    // 4. Sold out: rivals take the last seats; best available says so kindly, then the class shows sold out.
    await rival2.post(`/api/events/${event.id}/holds`, { seat_ids: [ids.get('A-1-3'), ids.get('A-1-4')] }, { expect: 201 });
    await page.selectOption('#best-quantity', '2');
    await page.locator('#best-available').click();
    await page.locator('.toast', { hasText: 'not enough seats left' }).waitFor();
    await rival.post(`/api/events/${event.id}/holds`, { seat_ids: [ids.get('A-1-1'), ids.get('A-1-2')] }, { expect: 201 });
    await page.locator('#sold-out').waitFor({ timeout: 8000 });
    assert.equal(await page.locator('#best-available').textContent(), 'Sold out');
    assert.ok(await page.locator('#best-available').isDisabled());
    assert.match(await page.locator('.price-list').textContent(), /Sold out/);
    await screenshot(page, 'fan-event-sold-out');

    noProblems(page);
  } finally {
    await context.close();
  }
});

const SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 400 260">
  <rect x="0" y="0" width="400" height="260" fill="#eef1f5"/>
  <rect x="100" y="12" width="200" height="36" rx="6" fill="#3b4252"/>
  <text x="200" y="36" text-anchor="middle" font-size="16" fill="#ffffff">STAGE</text>
  <path d="M40 90 Q200 60 360 90 L360 240 L40 240 Z" fill="none" stroke="#9aa3b2" stroke-width="2"/>
</svg>`;

function svgSeats() {
  const seats = [];
  for (let row = 1; row <= 5; row += 1) {
    for (let seat = 1; seat <= 12; seat += 1) {
      seats.push({ label: `${row <= 2 ? 'F' : 'B'}-${row}-${seat}`, x: 70 + (seat - 1) * 24, y: 100 + (row - 1) * 28 });
    }
  }
  return seats;
}

test('every fan page renders at 375×812 and 1280×800 (screenshots), SVG seats click on the canvas', async () => {
  const grid = await newEvent({
    title: 'Screens grid',
    sections: [{ name: 'A', rows: 6, seats_per_row: 16 }, { name: 'B', rows: 10, seats_per_row: 20 }],
    classes: [{ name: 'VIP', price: 15000, currency: 'EUR', sections: ['A'] }, { name: 'Normal', price: 5000, currency: 'EUR' }],
  });
  const svg = await newEvent({
    title: 'Screens SVG',
    svg: { svg: SVG, seats: svgSeats() },
    classes: [{ name: 'Front', price: 9000, currency: 'EUR', sections: ['F'] }, { name: 'Back', price: 4500, currency: 'EUR' }],
  });
  const soon = await newEvent({ title: 'Screens queue', opens: 3600, highDemand: true });
  const fan = await newFan('screens');
  const ids = await seatIds(grid.id);
  const { data: held } = await fan.post(`/api/events/${grid.id}/holds`, { seat_ids: [ids.get('A-1-7'), ids.get('A-1-8')] }, { expect: 201 });
  const { data: booking } = await fan.post(`/api/events/${grid.id}/registrations`, { hold_id: held.hold_id }, { headers: { 'Idempotency-Key': crypto.randomUUID() }, expect: 201 });
  const other = await newFan('others');
  const taken = ['B-3-5', 'B-3-6', 'B-3-7', 'A-4-2'].map((l) => ids.get(l));
  await other.post(`/api/events/${grid.id}/holds`, { seat_ids: taken }, { expect: 201 });

  for (const size of [MOBILE, DESKTOP]) {
    const anon = await openAs(browser, null, size);
    await fan.login(fan.email, fan.password);
    const me = await openAs(browser, fan, size);
    try {
      const p = anon.page;
      await p.goto('/events');
      await p.locator('.card--link').first().waitFor();
      await screenshot(p, 'fan-events');
      await p.goto('/login');
      await screenshot(p, 'fan-login');
      if (size === MOBILE) {
        // Log in through the form: a wrong password is refused kindly, the right one logs in
        // and goes back where the fan came from (?next=).
        await p.goto(`/login?next=${encodeURIComponent(`/events/${svg.id}`)}`);
        await p.getByLabel('Email').fill(fan.email);
        await p.getByLabel('Password').fill('not-the-password');
        await p.getByRole('button', { name: 'Log in' }).click();
        await p.locator('#login-error', { hasText: 'do not match' }).waitFor();
        await p.getByLabel('Password').fill(fan.password);
        await p.getByRole('button', { name: 'Log in' }).click();
        await p.waitForURL(`**/events/${svg.id}`);
        await p.getByRole('button', { name: 'Log out' }).click();
        await p.getByRole('link', { name: 'Log in' }).waitFor();
      }
      await p.goto('/signup');
      await screenshot(p, 'fan-signup');
      assert.deepEqual(await unlabelled(p), []);

      const q = me.page;
      await q.goto(`/events/${grid.id}`);
      await q.locator('.seat-btn').first().waitFor();
      await seatButton(q, 'A-1-3').click();
      // The canvas works from the keyboard: arrows move a cursor, Enter selects, the seat is announced.
      await q.locator('.seatmap canvas').focus();
      assert.match(await q.locator('#seatmap-cursor').textContent(), /^Seat A-1-1, free, €150\.00, VIP$/);
      await q.keyboard.press('ArrowRight');
      await q.keyboard.press('ArrowDown');
      await q.keyboard.press('Enter');
      assert.match(await q.locator('#seatmap-cursor').textContent(), /^Seat A-2-2, selected, €150\.00, VIP$/);
      await q.selectOption('#pick-row', '2');
      assert.equal(await seatButton(q, 'A-2-2').getAttribute('aria-pressed'), 'true');
      await screenshot(q, 'fan-event-grid');
      assert.deepEqual(await unlabelled(q), [], 'every control of the event page has a name');

      await q.goto(`/events/${svg.id}`);
      await q.locator('.seatmap canvas').waitFor();
      // Click the canvas where seat F-1-3 is drawn: the seat map finds it and selects it.
      const point = await q.evaluate(() => {
        const map = document.querySelector('.seatmap').seatMap;
        const i = map.byLabel.get('F-1-3');
        return { x: map.px[i], y: map.py[i] };
      });
      await q.locator('.seatmap canvas').click({ position: point });
      assert.equal(await seatButton(q, 'F-1-3').getAttribute('aria-pressed'), 'true');
      assert.match(await q.locator('#order-panel').textContent(), /F-1-3/);
      await screenshot(q, 'fan-event-svg');

      await q.goto(`/events/${soon.id}/queue`);
      await q.locator('#queue-countdown').waitFor();
      await screenshot(q, 'fan-queue');
      assert.deepEqual(await unlabelled(q), []);

      await q.goto(`/bookings/${booking.booking_id}`);
      await q.locator('#confirmation').waitFor();
      await screenshot(q, 'fan-booking');

      await q.goto('/me/tickets');
      await q.locator('[data-booking]').first().waitFor();
      await screenshot(q, 'fan-tickets');
      assert.deepEqual(await unlabelled(q), []);

      // Nothing overflows sideways at this width.
      const overflow = await q.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `page overflows by ${overflow}px at ${size.width}px`);
      noProblems(p);
      noProblems(q);
    } finally {
      await anon.context.close();
      await me.context.close();
    }
  }
});

test('a 100,000-seat stadium is one canvas, ready in seconds, still reachable from the keyboard', async () => {
  const stadium = await newEvent({
    title: 'Stadium',
    sections: ['N', 'E', 'S', 'W'].map((name) => ({ name, rows: 250, seats_per_row: 100 })),
  });
  assert.equal(stadium.capacity, 100000);
  const { context, page } = await openAs(browser, null, DESKTOP);
  try {
    const started = Date.now();
    await page.goto(`/events/${stadium.id}`);
    await page.waitForFunction(() => document.querySelector('.seatmap')?.seatMap?.n === 100000
      && !document.querySelector('.seatmap[aria-busy]'), null, { timeout: 30000 });
    const ready = Date.now() - started;
    const dom = await page.evaluate(() => {
      const map = document.querySelector('.seatmap').seatMap;
      const t = performance.now();
      map.paint();
      return { paint: performance.now() - t, canvases: document.querySelectorAll('canvas').length, elements: document.querySelectorAll('*').length };
    });
    console.log(`# 100,000 seats: map ready ${ready} ms after navigation, one full paint ${dom.paint.toFixed(1)} ms, ${dom.elements} elements in the page`);
    assert.equal(dom.canvases, 1);
    assert.ok(dom.elements < 2000, `${dom.elements} elements: the seats must not be DOM nodes`);
    assert.ok(ready < 15000, `ready in ${ready} ms`);
    await page.locator('.seatmap canvas').focus();
    await page.keyboard.press('End');
    assert.match(await page.locator('#seatmap-cursor').textContent(), /^Seat N-1-100, free/);
    await page.selectOption('#pick-section', 'W');
    await page.selectOption('#pick-row', '250');
    assert.match(await seatButton(page, 'W-250-100').getAttribute('aria-label'), /^Seat W-250-100, free, €40\.00/);
    noProblems(page);
  } finally {
    await context.close();
  }
});
