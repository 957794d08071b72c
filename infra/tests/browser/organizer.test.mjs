// The organizer pages in real Chromium against the running dev stack (http://127.0.0.1:8080):
// a grid venue built with the builder and an event with two classes made through the UI (and
// found in the public list), the high-demand switch flipped on the live dashboard while a fan
// is on the event page (the fan is sent to the waiting room, the dashboard shows the queue),
// and screenshots of every organizer page at 375×812 and 1280×800 in .run/screenshots/.
//
//   node --test infra/tests/browser/organizer.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { launch, openAs, newFan, screenshot, eventually, email, Client, ADMIN, BASE, RUN_ID } from './lib.mjs';

let browser;
let org;
const MOBILE = { width: 375, height: 812, mobile: true };
const DESKTOP = { width: 1280, height: 800 };

/** An approved organizer of our own, who can log in again for every browser context. */
async function newOrganizer(tag) {
  const client = new Client();
  client.email = email(tag);
  client.password = 'organizer-pass-123';
  await client.register(`Organizer ${tag}`, client.email, client.password);
  await client.post('/api/organizer/applications', { company: `${tag} Ltd`, details: 'Browser tests.' }, { expect: 201 });
  const admin = new Client();
  await admin.login(ADMIN.email, ADMIN.password);
  await admin.post(`/api/admin/organizers/${client.user.id}/approve`, undefined, { expect: 200 });
  await client.login(client.email, client.password);
  return client;
}

/** A browser context logged in as `client` (a fresh session of its own). */
async function openLoggedIn(client, size) {
  await client.login(client.email, client.password);
  return openAs(browser, client, size);
}

async function eventOf(owner, { sections = [{ name: 'A', rows: 2, seats_per_row: 8 }, { name: 'B', rows: 2, seats_per_row: 8 }], opens = -60 } = {}) {
  const { data: venue } = await owner.post('/api/venues', { name: `Dash hall ${RUN_ID}`, city: 'Bergen', layout: { kind: 'grid', sections } }, { expect: 201 });
  const now = Date.now();
  const { data: event } = await owner.post('/api/events', {
    title: `Dashboard ${RUN_ID}-${randomInt(1e5)}`,
    venue_id: venue.id,
    starts_at: new Date(now + 20 * 86400e3).toISOString(),
    sale_opens_at: new Date(now + opens * 1000).toISOString(),
    classes: [{ name: 'Front', price: 9900, currency: 'EUR', sections: ['A'] }, { name: 'Rest', price: 3900, currency: 'EUR' }],
    hold_seconds: 300,
    max_seats_per_order: 4,
  }, { expect: 201 });
  return event;
}

function noProblems(page) {
  assert.deepEqual(page.problems, [], 'no script errors in the page');
}

/** Form controls with no accessible name (no <label>, aria-label or aria-labelledby). */
async function unlabelled(page) {
  return page.evaluate(() => [...document.querySelectorAll('main input, main select, main textarea')]
    .filter((el) => el.type !== 'hidden' && el.labels.length === 0 && !el.getAttribute('aria-label') && !el.getAttribute('aria-labelledby'))
    .map((el) => el.id || el.name || el.outerHTML.slice(0, 60)));
}

before(async () => {
  const health = await fetch(`${BASE}/api/healthz`).catch(() => null);
  assert.ok(health?.ok, `the stack is not up at ${BASE} (infra/dev up)`);
  browser = await launch();
  org = await newOrganizer('org-ui');
});

after(async () => {
  await browser?.close();
});

test('an organizer builds a grid venue and an event with two classes in the UI; it is in the public list', async () => {
  const { context, page } = await openLoggedIn(org, MOBILE);
  try {
    // The grid builder: section A 3 × 8 is there by default-ish; set it, add B 2 × 10.
    await page.goto('/organizer/venues/new');
    await page.getByLabel('Venue name').fill(`Builder hall ${RUN_ID}`);
    await page.getByLabel('City').fill('Trondheim');
    const first = page.locator('#sections li').first();
    await first.getByLabel('Section', { exact: true }).fill('A');
    await first.getByLabel('Rows').fill('3');
    await first.getByLabel('Seats per row').fill('8');
    await page.getByRole('button', { name: '+ Add a section' }).click();
    const second = page.locator('#sections li').nth(1);
    await second.getByLabel('Section', { exact: true }).fill('B');
    await second.getByLabel('Rows').fill('2');
    await second.getByLabel('Seats per row').fill('10');
    // The live preview follows the form.
    assert.equal(await page.locator('#grid-summary').textContent(), '2 sections, 44 seats');
    assert.match(await page.locator('#grid-preview').getAttribute('aria-label'), /section A, 3 rows of 8 seats; section B, 2 rows of 10 seats/);
    // A bad section name is refused kindly, before anything is sent.
    await second.getByLabel('Section', { exact: true }).fill('B!');
    await page.getByRole('button', { name: 'Create the venue' }).click();
    assert.match(await page.locator('#venue-error').textContent(), /Section names are 1 to 20 letters/);
    assert.equal(await second.getByLabel('Section', { exact: true }).getAttribute('aria-invalid'), 'true');
    await second.getByLabel('Section', { exact: true }).fill('B');
    await page.getByRole('button', { name: 'Create the venue' }).click();
    await page.waitForURL(/\/organizer\/venues\/[0-9a-f-]{36}$/);
    const venueId = page.url().split('/').pop();
    await page.getByRole('heading', { level: 1, name: `Builder hall ${RUN_ID}` }).waitFor();
    assert.match(await page.locator('main').textContent(), /44 seats/);

    // The event, with VIP on section A and Standard on the rest.
    await page.getByRole('link', { name: 'Create an event here' }).click();
    await page.waitForURL(/\/organizer\/events\/new\?venue=/);
    await page.locator('#venue-sections').filter({ hasText: 'Sections of' }).waitFor();
    assert.equal(await page.locator('#venue').inputValue(), venueId);
    const title = `UI event ${RUN_ID}-${randomInt(1e5)}`;
    await page.getByLabel('Title').fill(title);
    await page.getByLabel('Description', { exact: true }).fill('Made in the browser.');
    const c1 = page.locator('#classes li').first();
    await c1.getByLabel('Class name').fill('VIP');
    await c1.getByLabel('Price').fill('120');
    await c1.getByLabel('A', { exact: true }).check();
    await page.getByRole('button', { name: '+ Add a class' }).click();
    const c2 = page.locator('#classes li').nth(1);
    await c2.getByLabel('Class name').fill('Standard');
    await c2.getByLabel('Price').fill('45.50');
    await page.getByRole('button', { name: 'Create the event' }).click();
    await page.waitForURL(/\/organizer\/events\/[0-9a-f-]{36}$/);
    const eventId = page.url().split('/').pop();
    await page.locator('#class-table tbody tr').nth(1).waitFor();
    assert.match(await page.locator('#class-table tbody').textContent(), /VIP.*€120\.00.*Standard.*€45\.50/s);
    assert.equal(await page.locator('#stat-free').getAttribute('data-value'), '44');

    // The API agrees: two classes, the right seats and prices.
    const { data: event } = await new Client().get(`/api/events/${eventId}`, { expect: 200 });
    const classes = Object.fromEntries(event.classes.map((c) => [c.name, c]));
    assert.equal(event.capacity, 44);
    assert.equal(classes.VIP.price, 12000);
    assert.equal(classes.Standard.price, 4550);

    // It is in "my events" and in the public list.
    await page.getByRole('link', { name: 'My events' }).first().click();
    await page.locator(`#my-events tr[data-event="${eventId}"]`).waitFor();
    const anon = await openAs(browser, null, DESKTOP);
    try {
      await anon.page.goto(`/events?q=${encodeURIComponent(title)}`);
      await anon.page.getByRole('link', { name: title }).waitFor();
      noProblems(anon.page);
    } finally {
      await anon.context.close();
    }
    noProblems(page);
  } finally {
    await context.close();
  }
});

test('the organizer flips high-demand mode on the dashboard while a fan shops: the fan goes to the waiting room, the dashboard shows the queue', async () => {
  const event = await eventOf(org);
  const fan = await newFan('flip');
  const early = await newFan('flip-early');
  const dash = await openLoggedIn(org, DESKTOP);
  const fanView = await openAs(browser, fan, MOBILE);
  try {
    await dash.page.goto(`/organizer/events/${event.id}`);
    await dash.page.locator('#class-table').waitFor();
    assert.match(await dash.page.locator('#hd-state').textContent(), /High demand: off/);
    assert.match(await dash.page.locator('#q-none').textContent(), /no waiting room/);

    // The fan is on the event page, low demand: seats straight away.
    await fanView.page.goto(`/events/${event.id}`);
    await fanView.page.locator('.seat-btn[data-seat="A-1-1"]').click();

    // Flip: 1 admission a minute, 1 shopper at once, so whoever joins now waits.
    await dash.page.getByLabel('Send fans through the waiting room').check();
    await dash.page.getByLabel('Admit per minute').fill('1');
    await dash.page.getByLabel('Shopping at once, at most').fill('1');
    await dash.page.getByRole('button', { name: 'Apply' }).click();
    await dash.page.locator('#hd-state', { hasText: 'High demand: on' }).waitFor({ timeout: 3000 });
    assert.match(await dash.page.locator('#hd-state').textContent(), /1 admitted a minute, at most 1 shopping at once/);
    const { data: gate } = await new Client().get(`/api/events/${event.id}`, { expect: 200 });
    assert.equal(gate.high_demand, true);

    // Another fan joined first; then our fan tries to hold and is sent to the waiting room.
    const { data: joined } = await early.post(`/api/queue/${event.id}/join`, undefined, { expect: 200 });
    assert.equal(joined.state, 'waiting');
    await fanView.page.locator('#hold-selected').click();
    await fanView.page.waitForURL(new RegExp(`/events/${event.id}/queue$`), { timeout: 5000 });
    await fanView.page.locator('#queue-position').waitFor();
    assert.match(await fanView.page.locator('#queue-live').textContent(), /2|number/);

    // The dashboard, polling every 2 s, shows both fans waiting.
    const started = Date.now();
    await eventually(async () => Number(await dash.page.locator('#stat-waiting').getAttribute('data-value')) >= 2,
      { timeout: 8000, what: 'the dashboard to show 2 fans waiting' });
    console.log(`# dashboard showed the queue ${Date.now() - started} ms after the fan joined`);
    assert.equal(await dash.page.locator('#q-waiting').textContent(), '2');
    assert.match(await dash.page.locator('#q-active').textContent(), /of 1$/);
    await screenshot(dash.page, 'org-dashboard-queue');
    await screenshot(fanView.page, 'org-flip-fan-queue');

    // And back off: the result shows at once.
    await dash.page.getByLabel('Send fans through the waiting room').uncheck();
    await dash.page.getByRole('button', { name: 'Apply' }).click();
    await dash.page.locator('#hd-state', { hasText: 'High demand: off' }).waitFor({ timeout: 3000 });
    noProblems(dash.page);
    noProblems(fanView.page);
  } finally {
    await dash.context.close();
    await fanView.context.close();
  }
});

const SVG = `<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 300 200">
  <rect x="0" y="0" width="300" height="200" fill="#eef1f5"/>
  <rect x="80" y="10" width="140" height="30" rx="6" fill="#3b4252"/>
  <text x="150" y="31" text-anchor="middle" font-size="14" fill="#ffffff">STAGE</text>
</svg>`;
const SEAT_LINES = Array.from({ length: 4 }, (_, r) => Array.from({ length: 10 }, (__, s) => `F-${r + 1}-${s + 1},${45 + s * 23},${70 + r * 30}`)).flat().join('\n');

test('every organizer page renders at 375×812 and 1280×800 (screenshots); an SVG venue previews as the API serves it', async () => {
  const event = await eventOf(org, { sections: [{ name: 'A', rows: 6, seats_per_row: 20 }, { name: 'B', rows: 10, seats_per_row: 24 }] });
  // Some sales, so the bars show something.
  const buyer = await newFan('org-shots');
  const { data: hold } = await buyer.post(`/api/events/${event.id}/holds`, { class: 'Front', quantity: 4 }, { expect: 201 });
  await buyer.post(`/api/events/${event.id}/registrations`, { hold_id: hold.hold_id }, { headers: { 'Idempotency-Key': crypto.randomUUID() }, expect: 201 });
  const holder = await newFan('org-shots-hold');
  await holder.post(`/api/events/${event.id}/holds`, { class: 'Rest', quantity: 3 }, { expect: 201 });
  const applicant = await newFan('org-shots-fan');

  let svgVenue = null;
  for (const size of [MOBILE, DESKTOP]) {
    const o = await openLoggedIn(org, size);
    const f = await openLoggedIn(applicant, size);
    try {
      const p = o.page;
      const tag = (name) => `org-${name}`;
      await p.goto('/organizer');
      await p.locator('#my-events').waitFor();
      await screenshot(p, tag('events'));

      await p.goto(`/organizer/events/${event.id}`);
      await p.locator('#class-table').waitFor();
      assert.equal(await p.locator('#stat-sold').getAttribute('data-value'), '4');
      assert.equal(await p.locator('#stat-revenue').getAttribute('data-value'), String(4 * 9900));
      await eventually(async () => (await p.locator('#stat-held').getAttribute('data-value')) === '3', { what: 'held seats on the dashboard' });
      await screenshot(p, tag('dashboard'));
      assert.deepEqual(await unlabelled(p), [], 'every control of the dashboard has a label');

      await p.goto('/organizer/venues/new');
      await p.locator('#grid-preview').waitFor();
      await screenshot(p, tag('venue-new-grid'));
      assert.deepEqual(await unlabelled(p), [], 'every control of the venue builder has a label');
      await p.getByLabel('SVG drawing upload').check();
      await p.locator('#svg-text').fill(SVG);
      await p.locator('#seats-text').fill(SEAT_LINES);
      await p.locator('#svg-preview img').waitFor();
      assert.match(await p.locator('#svg-summary').textContent(), /^40 seats on a 300 × 200 drawing/);
      assert.equal(await p.locator('#svg-preview circle').count(), 40);
      await screenshot(p, tag('venue-new-svg'));
      if (!svgVenue) {
        // A drawing with a script is refused by the API's allow-list, kindly, and nothing is made.
        await p.getByLabel('Venue name').fill(`Hostile hall ${RUN_ID}`);
        await p.locator('#svg-text').fill('<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 10 10"><script>alert(1)</script></svg>');
        await p.getByRole('button', { name: 'Create the venue' }).click();
        await p.locator('#venue-error', { hasText: 'The drawing was refused' }).waitFor();
        assert.match(await p.locator('#venue-error').textContent(), /script/i);
        assert.match(p.url(), /\/organizer\/venues\/new$/);
        await p.locator('#svg-text').fill(SVG);
        await p.getByLabel('Venue name').fill(`SVG hall ${RUN_ID}`);
        await p.getByRole('button', { name: 'Create the venue' }).click();
        await p.waitForURL(/\/organizer\/venues\/[0-9a-f-]{36}$/);
        svgVenue = p.url().split('/').pop();
      } else {
        await p.goto(`/organizer/venues/${svgVenue}`);
      }
      // The drawing as the API serves it, loaded and drawn.
      const img = p.locator('#venue-layout img');
      await img.waitFor();
      assert.equal(await img.getAttribute('src'), `/api/venues/${svgVenue}/layout.svg`);
      await eventually(() => img.evaluate((el) => el.complete && el.naturalWidth > 0), { what: 'the served SVG to load' });
      assert.equal(await p.locator('#venue-layout circle').count(), 40);
      await screenshot(p, tag('venue-svg'));

      await p.goto('/organizer/venues');
      await p.locator('#venues').waitFor();
      await screenshot(p, tag('venues'));

      await p.goto('/organizer/events/new');
      await p.locator('#venue-sections').filter({ hasText: 'Sections of' }).waitFor();
      await screenshot(p, tag('event-new'));
      assert.deepEqual(await unlabelled(p), [], 'every control of the event form has a label');

      // A fan's view of /organizer: the application form.
      await f.page.goto('/organizer');
      await f.page.locator('#apply-form').waitFor();
      await screenshot(f.page, tag('apply'));

      const overflow = await p.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `page overflows by ${overflow}px at ${size.width}px`);
      noProblems(p);
      noProblems(f.page);
    } finally {
      await o.context.close();
      await f.context.close();
    }
  }
  // A fan may not open organizer pages.
  const g = await openLoggedIn(applicant, DESKTOP);
  try {
    await g.page.goto(`/organizer/events/${event.id}`);
    await g.page.getByRole('heading', { name: 'Not allowed' }).waitFor();
  } finally {
    await g.context.close();
  }
});
