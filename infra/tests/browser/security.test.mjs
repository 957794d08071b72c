// The gate holds, in real Chromium against the running dev stack (issue #13):
//   - ?next= after login never leaves the site, whatever a browser makes of the value
//     (backslashes, tabs, //host, other schemes), logged in already or at the login form;
//   - the UI's security headers (CSP, frame-ancestors, X-Frame-Options, nosniff,
//     Referrer-Policy) come with every page, from the gateway and from the API alike, and
//     Chromium enforces them: no inline script runs, no other site can frame the UI, and the
//     WebSocket and the waiting room's event stream still work under the policy;
//   - the push tokens in query strings (/ws?access_token=, /api/queue/ID/events?queue_token=)
//     reach neither the gateway's access log nor the services' logs.
//
// Every page opened through openAs() records Content-Security-Policy violations as problems,
// so the other browser tests fail on any violation too.
//
//   node --test infra/tests/browser/security.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { readFileSync, readdirSync, existsSync } from 'node:fs';
import path from 'node:path';
import { launch, openAs, newFan, newEvent, eventually, BASE, API_DIRECT, RUN_DIR } from './lib.mjs';

let browser;
const MOBILE = { width: 375, height: 812, mobile: true };
const ORIGIN = new URL(BASE).origin;
const EVIL = 'evil.example';

before(async () => {
  const health = await fetch(`${BASE}/api/healthz`).catch(() => null);
  await health?.body?.cancel();
  assert.ok(health?.ok, `the stack is not up at ${BASE} (infra/dev up)`);
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

function noProblems(page) {
  assert.deepEqual(page.problems, [], 'no script errors and no CSP violations in the page');
}

// Each value as it would sit, already percent-encoded, in a link someone sends a fan.
// Browsers read `/\host` as `//host` and drop tabs and newlines from URLs, so the first three
// pass a naive "starts with one slash" check and still lead to another site.
const HOSTILE_NEXT = [
  '/%5Cevil.example', // /\evil.example
  '/%09/evil.example', // /<TAB>/evil.example
  '/%0A/evil.example', // /<LF>/evil.example
  '%5C%5Cevil.example', // \\evil.example
  '//evil.example',
  '/%2F/evil.example', // //evil.example once decoded
  encodeURIComponent('/%2F/evil.example'), // a path with an encoded slash: stays on the site
  'https://evil.example',
  encodeURIComponent('https://evil.example/'),
  'javascript:alert(1)',
  encodeURIComponent('javascript:alert(document.domain)'),
];

/** A context whose requests to another site are answered by a stand-in page and recorded. */
async function guarded(client) {
  const opened = await openAs(browser, client, MOBILE);
  opened.offsite = [];
  opened.dialogs = [];
  await opened.context.route((url) => url.origin !== ORIGIN && url.protocol.startsWith('http'), (route) => {
    opened.offsite.push(route.request().url());
    return route.fulfill({ status: 200, contentType: 'text/html', body: '<h1>evil</h1>' });
  });
  opened.page.on('dialog', (dialog) => {
    opened.dialogs.push(dialog.message());
    dialog.dismiss().catch(() => {});
  });
  return opened;
}

/** Until the page has left the site, or shows a page of the site other than `from`. */
async function settled(page, from) {
  await eventually(async () => {
    if (new URL(page.url()).origin !== ORIGIN) return true;
    return page.evaluate((f) => {
      const app = document.getElementById('app');
      return Boolean(app?.dataset.route && app.dataset.route !== f && !app.hasAttribute('aria-busy'));
    }, from).catch(() => false);
  }, { what: `the page to leave ${from}` });
  // A late redirect (location.assign after a tick) would show up here.
  await page.waitForTimeout(300);
}

function assertStayed({ page, offsite, dialogs }, next) {
  assert.equal(new URL(page.url()).origin, ORIGIN, `next=${next} sent the fan to ${page.url()}`);
  assert.deepEqual(offsite, [], `next=${next} requested another site`);
  assert.deepEqual(dialogs, [], `next=${next} ran script`);
}

test('?next= never leads a logged-in fan to another site', async () => {
  const fan = await newFan('next-in');
  for (const next of HOSTILE_NEXT) {
    await fan.login(fan.email, fan.password);
    const opened = await guarded(fan);
    try {
      await opened.page.goto(`/login?next=${next}`);
      await settled(opened.page, '/login');
      assertStayed(opened, next);
      noProblems(opened.page);
    } finally {
      await opened.context.close();
    }
  }
});

test('?next= never leads a fan to another site after logging in at the form', async () => {
  const fan = await newFan('next-form');
  // The form's logins share the gateway's rate-limit bucket with every other browser test:
  // the values browsers rewrite (the two, the newline) plus one of each other kind.
  for (const next of ['/%5Cevil.example', '/%09/evil.example', '/%0A/evil.example', '//evil.example', 'https://evil.example', 'javascript:alert(1)']) {
    const opened = await guarded(null);
    try {
      const { page } = opened;
      await page.goto(`/login?next=${next}`);
      await page.getByLabel('Email').fill(fan.email);
      await page.getByLabel('Password').fill(fan.password);
      await page.getByRole('button', { name: 'Log in' }).click();
      await settled(page, '/login');
      assertStayed(opened, next);
      assert.equal(new URL(page.url()).pathname, '/', `next=${next} falls back to the home page`);
      await page.getByRole('button', { name: 'Log out' }).waitFor();
      noProblems(page);
    } finally {
      await opened.context.close();
    }
  }
});

test('a same-site ?next= still brings the fan back, at the form and when logged in', async () => {
  const fan = await newFan('next-ok');
  const opened = await guarded(null);
  try {
    const { page } = opened;
    await page.goto(`/login?next=${encodeURIComponent('/me/tickets?tab=all#latest')}`);
    await page.getByLabel('Email').fill(fan.email);
    await page.getByLabel('Password').fill(fan.password);
    await page.getByRole('button', { name: 'Log in' }).click();
    await page.waitForURL((url) => url.pathname === '/me/tickets' && url.search === '?tab=all' && url.hash === '#latest');
    await page.goto(`/signup?next=${encodeURIComponent('/events')}`);
    await page.waitForURL(`${ORIGIN}/events`);
    assertStayed(opened, '/me/tickets');
    noProblems(page);
  } finally {
    await opened.context.close();
  }
});

// --- headers ---------------------------------------------------------------------------------

const UI_HEADERS = ['content-security-policy', 'x-frame-options', 'x-content-type-options', 'referrer-policy'];

test('every UI response carries the security headers, from the gateway and from the API alike', async () => {
  for (const file of ['/', '/index.html', '/events/some-client-route', '/js/app.js', '/css/app.css']) {
    // Only the headers matter; the bodies are cancelled, so no kept-alive socket holds node open
    // until the server times it out (a minute after the last test).
    const viaGateway = await fetch(BASE + file);
    await viaGateway.body?.cancel();
    const direct = await fetch(API_DIRECT + file);
    await direct.body?.cancel();
    for (const [where, response] of [['gateway', viaGateway], ['api', direct]]) {
      assert.equal(response.status, 200, `${where} ${file}`);
      const csp = response.headers.get('content-security-policy') || '';
      for (const directive of ["default-src 'self'", "script-src 'self'", "object-src 'none'", "base-uri 'self'",
        "frame-ancestors 'none'", "form-action 'self'", "connect-src 'self'"]) {
        assert.ok(csp.split(';').map((d) => d.trim()).includes(directive), `${where} ${file}: CSP has ${directive}: ${csp}`);
      }
      assert.doesNotMatch(csp, /unsafe-(inline|eval)/, `${where} ${file}: nothing unsafe in ${csp}`);
      assert.equal(response.headers.get('x-frame-options'), 'DENY', `${where} ${file}`);
      assert.equal(response.headers.get('x-content-type-options'), 'nosniff', `${where} ${file}`);
      assert.match(response.headers.get('referrer-policy') || '', /^(same-origin|no-referrer|strict-origin)$/, `${where} ${file}`);
    }
    // One policy: the gateway and the API must not drift apart.
    for (const name of UI_HEADERS) {
      assert.equal(viaGateway.headers.get(name), direct.headers.get(name), `${name} of ${file}: gateway and API differ`);
    }
  }
  // The API's JSON: nosniff too.
  const json = await fetch(`${BASE}/api/events`);
  await json.body?.cancel();
  assert.equal(json.headers.get('x-content-type-options'), 'nosniff');
});

test('Chromium enforces the policy: no inline script runs, and no other site can frame the UI', async () => {
  const { context, page } = await openAs(browser, null, MOBILE);
  try {
    await page.goto('/events');
    await page.locator('#app[data-route="/events"]').waitFor();
    // An injected inline script (what an XSS would try) is refused and reported.
    const ran = await page.evaluate(async () => {
      const script = document.createElement('script');
      script.textContent = 'window.__inlineRan = true;';
      document.head.append(script);
      await new Promise((r) => setTimeout(r, 100));
      return Boolean(window.__inlineRan);
    });
    assert.equal(ran, false, 'an inline script ran');
    await eventually(() => page.problems.some((p) => /CSP violation: script-src/.test(p)), { what: 'the violation report' });
    page.problems.length = 0;

    // Another origin (the API's own port is another origin) frames the UI: the frame stays empty.
    await page.route(`${API_DIRECT}/framer`, (route) => route.fulfill({
      status: 200, contentType: 'text/html', body: `<iframe id="f" src="${BASE}/events" width="300" height="300"></iframe>`,
    }));
    await page.goto(`${API_DIRECT}/framer`);
    await page.waitForTimeout(1500);
    const framed = await Promise.all(page.frames().filter((f) => f !== page.mainFrame())
      .map((f) => f.evaluate(() => Boolean(document.getElementById('app'))).catch(() => false)));
    assert.ok(framed.length >= 1, 'the iframe exists');
    assert.deepEqual(framed, framed.map(() => false), 'the UI rendered inside another site\'s frame');
  } finally {
    await context.close();
  }
});

// --- tokens in logs --------------------------------------------------------------------------

function logFiles() {
  const dir = path.join(RUN_DIR, 'logs');
  return readdirSync(dir).filter((f) => f.endsWith('.log')).map((f) => path.join(dir, f));
}

test('the WebSocket and the queue stream work under the CSP, and their tokens never reach a log', async () => {
  const accessLog = path.join(RUN_DIR, 'logs', 'nginx-access.log');
  assert.ok(existsSync(accessLog), `${accessLog} exists (the stack of infra/dev)`);
  const event = await newEvent({ title: 'Log redaction', opens: 3600, highDemand: true });
  const fan = await newFan('redact');
  const { context, page } = await openAs(browser, fan, MOBILE);
  const sockets = [];
  const streams = [];
  page.on('websocket', (ws) => sockets.push(ws.url()));
  page.on('response', (response) => {
    if (response.url().includes('/events?queue_token=')) streams.push(response);
  });
  try {
    await page.goto(`/events/${event.id}/queue`);
    await page.locator('#queue-countdown').waitFor();
    // The waiting room's stream answers 200 and its first status reaches the page by push.
    await eventually(() => streams.length > 0, { what: 'the queue stream' });
    assert.equal(streams[0].status(), 200);
    await eventually(() => page.evaluate(async () => (await import('/js/push.js')).push.connected), { what: 'the WebSocket to open' });
    noProblems(page);
  } finally {
    await context.close(); // closes both, so the gateway logs them
  }
  const accessToken = new URL(sockets[0]).searchParams.get('access_token');
  const queueToken = new URL(streams[0].url()).searchParams.get('queue_token');
  assert.ok(accessToken?.length > 20 && queueToken?.length > 20, 'both tokens seen in the URLs');

  // The gateway logs a proxied stream when it ends, and flushes its buffer within a second.
  const wsLine = `GET /ws?access_token=[redacted] HTTP/1.1`;
  const streamLine = `GET /api/queue/${event.id}/events?queue_token=[redacted] HTTP/1.1`;
  await eventually(() => {
    const log = readFileSync(accessLog, 'utf8');
    return log.includes(wsLine) && log.includes(streamLine);
  }, { timeout: 15000, what: 'the redacted stream lines in the access log' });
  const leaks = [];
  for (const file of logFiles()) {
    const text = readFileSync(file, 'utf8');
    for (const [name, token] of [['access_token', accessToken], ['queue_token', queueToken]]) {
      if (text.includes(token)) leaks.push(`${path.basename(file)} has the ${name}`);
    }
  }
  assert.deepEqual(leaks, [], 'no token value in any log');
});
