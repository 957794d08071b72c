// Shared helpers of the browser tests: the stack's addresses, an API client for the tests' own
// data (organizers, venues, events, fans), and Chromium.
//
// Accounts are made through the API, not the UI, except where the UI's sign-up is under test.
// Log-ins and sign-ups are rate-limited per client IP; the gateway sets X-Forwarded-For to the
// caller, so every test client would share one bucket. The test's own API calls therefore go
// to ticketing-api's port directly with an X-Forwarded-For of their own (TRUST_FORWARDED_FOR is
// on in the dev stack), and a browser gets its session as a refresh cookie.

import { chromium } from 'playwright-core';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { mkdirSync, readFileSync, existsSync } from 'node:fs';
import { randomUUID, randomInt } from 'node:crypto';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = process.env.ROOT || path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../..');
export const BASE = process.env.BASE_URL || `http://127.0.0.1:${process.env.GATEWAY_PORT || 8080}`;
// ticketing-api's own port, for account calls (see above).
export const API_DIRECT = process.env.TICKETING_API_URL || `http://${process.env.TICKETING_API_ADDR || '127.0.0.1:8082'}`;
// The stack's run-time directory (infra/dev's RUN_DIR): its logs are read by the security tests.
export const RUN_DIR = process.env.RUN_DIR || path.join(ROOT, '.run');
// The stack's database (infra/dev's default): a test that holds a row lock reaches it with psql.
export const DATABASE_URL = process.env.DATABASE_URL || 'postgres://postgres@127.0.0.1:5432/ticketing';
export const SHOTS = process.env.SCREENSHOT_DIR || path.join(RUN_DIR, 'screenshots');
export const ADMIN = {
  email: process.env.ADMIN_EMAIL || 'admin@example.test',
  password: process.env.ADMIN_PASSWORD || 'admin-pass-123',
};
export const RUN_ID = `${Date.now().toString(36)}${randomInt(1000, 9999)}`;

const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';

// --- HTTP ------------------------------------------------------------------------------------

const fakeIp = () => `10.${randomInt(0, 255)}.${randomInt(0, 255)}.${randomInt(1, 254)}`;

/** A client of the API as one user: access token plus refresh cookie. */
export class Client {
  constructor(ip = fakeIp()) {
    this.ip = ip;
    this.token = null;
    this.refreshCookie = null;
    this.user = null;
  }

  async call(method, url, { body, headers = {}, expect, direct = false } = {}) {
    const base = direct ? API_DIRECT : BASE;
    const init = { method, headers: { Accept: 'application/json', 'X-Forwarded-For': this.ip, ...headers } };
    if (this.token) init.headers.Authorization = `Bearer ${this.token}`;
    if (body !== undefined) {
      init.headers['Content-Type'] = 'application/json';
      init.body = JSON.stringify(body);
    }
    const response = await fetch(base + url, init);
    const cookie = (response.headers.getSetCookie?.() || []).find((c) => c.startsWith('refresh_token='));
    if (cookie) this.refreshCookie = cookie.split(';')[0].slice('refresh_token='.length);
    const text = await response.text();
    let data = text;
    try {
      data = text ? JSON.parse(text) : null;
    } catch {
      // not JSON
    }
    if (expect !== undefined && ![expect].flat().includes(response.status)) {
      throw new Error(`${method} ${url}: expected ${expect}, got ${response.status} ${text.slice(0, 300)}`);
    }
    return { status: response.status, data };
  }

  get(url, opts) { return this.call('GET', url, opts); }
  post(url, body, opts) { return this.call('POST', url, { ...opts, body }); }
  put(url, body, opts) { return this.call('PUT', url, { ...opts, body }); }
  del(url, opts) { return this.call('DELETE', url, opts); }

  async register(name, email, password) {
    await this.call('POST', '/api/auth/register', { body: { name, email, password }, expect: 201, direct: true });
    return this.login(email, password);
  }

  async login(email, password) {
    const { data } = await this.call('POST', '/api/auth/login', { body: { email, password }, expect: 200, direct: true });
    this.token = data.access_token;
    this.user = data.user;
    return this;
  }

  async refresh() {
    const saved = this.token;
    this.token = null;
    const response = await fetch(`${API_DIRECT}/api/auth/refresh`, {
      method: 'POST',
      headers: { Cookie: `refresh_token=${this.refreshCookie}`, 'X-Forwarded-For': this.ip },
    });
    const cookie = (response.headers.getSetCookie?.() || []).find((c) => c.startsWith('refresh_token='));
    if (cookie) this.refreshCookie = cookie.split(';')[0].slice('refresh_token='.length);
    if (!response.ok) {
      this.token = saved;
      throw new Error(`refresh: ${response.status}`);
    }
    this.token = (await response.json()).access_token;
    return this;
  }
}

export function email(tag) {
  return `${tag}-${RUN_ID}-${randomInt(1e6)}@example.test`;
}

/** A new fan with an API session. */
export async function newFan(tag = 'fan') {
  const fan = new Client();
  fan.email = email(tag);
  fan.password = 'fan-pass-12345';
  await fan.register(`Fan ${tag}`, fan.email, fan.password);
  return fan;
}

let organizerPromise = null;

/** One approved organizer for the whole run (apply, admin approves, refresh for the new role). */
export function organizer() {
  if (!organizerPromise) {
    organizerPromise = (async () => {
      const org = new Client();
      await org.register('Browser Test Organizer', email('organizer'), 'organizer-pass-123');
      await org.post('/api/organizer/applications', { company: 'Browser Tests Ltd', details: 'Made by infra/tests/browser.' }, { expect: 201 });
      const admin = new Client();
      await admin.login(ADMIN.email, ADMIN.password);
      await admin.post(`/api/admin/organizers/${org.user.id}/approve`, undefined, { expect: 200 });
      await org.refresh();
      return org;
    })();
  }
  return organizerPromise;
}

/**
 * An event through the API. sections: [{name, rows, seats_per_row}] (grid) or svg: {svg, seats}.
 * opens: seconds from now until the sale opens (negative: already open).
 */
export async function newEvent({ title, sections, svg, classes, opens = -60, hold = 600, max = 6, highDemand = false } = {}) {
  const org = await organizer();
  const layout = svg ? { kind: 'svg', ...svg } : { kind: 'grid', sections: sections || [{ name: 'A', rows: 4, seats_per_row: 10 }] };
  const { data: venue } = await org.post('/api/venues', { name: `Hall ${RUN_ID}`, city: 'Oslo', layout }, { expect: 201 });
  const now = Date.now();
  const { data: event } = await org.post('/api/events', {
    title: `${title || 'Browser test'} ${RUN_ID}-${randomInt(1e5)}`,
    description: 'Created by the browser tests.',
    venue_id: venue.id,
    starts_at: new Date(now + 30 * 86400e3).toISOString(),
    sale_opens_at: new Date(now + opens * 1000).toISOString(),
    classes: classes || [{ name: 'Normal', price: 4000, currency: 'EUR' }],
    max_seats_per_order: max,
    hold_seconds: hold,
  }, { expect: 201 });
  if (highDemand) {
    await org.put(`/api/events/${event.id}/demand-mode`, { high_demand: true, admit_per_minute: 6000, max_active: 50 }, { expect: 200 });
  }
  return { ...event, venue };
}

/** seat label -> seat id for an event. */
export async function seatIds(eventId) {
  const { data } = await new Client().get(`/api/events/${eventId}/seats?format=compact`, { expect: 200 });
  return new Map(data.labels.map((label, i) => [label, data.ids[i]]));
}

/**
 * Locks the event's row (FOR UPDATE) in a psql session until `release()`. A registration
 * worker's booking transaction takes FOR KEY SHARE on its event first, so the event's queued
 * bookings wait, pending, for as long as the test wants: a confirmation held back for real.
 */
export async function lockEvent(eventId) {
  if (!/^[0-9a-f-]{36}$/.test(eventId)) throw new Error(`not an event id: ${eventId}`);
  const psql = spawn('psql', [DATABASE_URL, '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1'], { stdio: ['pipe', 'pipe', 'inherit'] });
  const exited = once(psql, 'exit');
  const locked = new Promise((resolve, reject) => {
    psql.stdout.on('data', (chunk) => {
      if (String(chunk).includes('locked')) resolve();
    });
    exited.then(([code]) => reject(new Error(`psql exited (${code}) before the lock was taken`)));
  });
  psql.stdin.write(`BEGIN;\nSELECT 'locked' FROM events WHERE id = '${eventId}' FOR UPDATE;\n`);
  await locked;
  return {
    async release() {
      if (psql.exitCode !== null) return;
      psql.stdin.end('COMMIT;\n');
      await exited;
    },
  };
}

// --- Chromium --------------------------------------------------------------------------------

export function assertChromium() {
  if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing (apt-get install chromium)`);
}

export async function launch() {
  assertChromium();
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}

/**
 * A browser context (one "browser" of one fan), logged in as `client` through its refresh
 * cookie when given. Console errors, failed page scripts and Content-Security-Policy violations
 * are collected in `page.problems`.
 */
export async function openAs(browser, client, { width = 1280, height = 800, mobile = false } = {}) {
  const context = await browser.newContext({
    baseURL: BASE,
    viewport: { width, height },
    deviceScaleFactor: 1,
    isMobile: mobile,
    hasTouch: mobile,
    acceptDownloads: true,
    locale: 'en-GB',
    timezoneId: 'Europe/Oslo',
  });
  if (client) {
    if (!client.refreshCookie) throw new Error('client has no refresh cookie');
    await context.addCookies([{
      name: 'refresh_token', value: client.refreshCookie, domain: '127.0.0.1', path: '/api/auth', httpOnly: true, sameSite: 'Strict',
    }]);
    // The browser now owns this session: the cookie rotates on its first refresh.
    client.refreshCookie = null;
  }
  // Any CSP violation in any frame becomes a console error, hence a problem (the UI must run
  // under its policy untouched). Init scripts are injected by the browser, outside the CSP.
  await context.addInitScript(() => {
    document.addEventListener('securitypolicyviolation', (e) => {
      console.error(`CSP violation: ${e.effectiveDirective} blocked ${e.blockedURI || 'inline'} at ${e.sourceFile || e.documentURI}:${e.lineNumber}`);
    });
  });
  const page = await context.newPage();
  page.problems = [];
  page.on('pageerror', (err) => page.problems.push(`pageerror: ${err.message}`));
  page.on('console', (msg) => {
    if (msg.type() === 'error' && !/Failed to load resource/.test(msg.text())) page.problems.push(`console: ${msg.text()}`);
  });
  return { context, page };
}

export async function screenshot(page, name) {
  mkdirSync(SHOTS, { recursive: true });
  const size = page.viewportSize();
  const file = path.join(SHOTS, `${name}-${size.width}x${size.height}.png`);
  await page.evaluate(() => window.scrollTo(0, 0));
  await page.screenshot({ path: file, fullPage: true });
  return file;
}

/** Waits until fn() (in node) is truthy; polls every 100 ms. */
export async function eventually(fn, { timeout = 10000, what = 'condition' } = {}) {
  const until = Date.now() + timeout;
  let last;
  while (Date.now() < until) {
    try {
      last = await fn();
      if (last) return last;
    } catch (err) {
      last = err;
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`timed out waiting for ${what} (last: ${last})`);
}

export function readPdfHead(file) {
  return readFileSync(file).subarray(0, 5).toString('latin1');
}
