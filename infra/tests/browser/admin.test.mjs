// The admin pages in real Chromium against the running dev stack: a fan applies to become an
// organizer in the UI, an admin approves it in the UI and the fan gets the organizer pages
// without logging out; an admin bans a user in the UI and the user's next API call fails;
// screenshots of every admin page at 375×812 and 1280×800 in .run/screenshots/.
//
//   node --test infra/tests/browser/admin.test.mjs

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { launch, openAs, newFan, screenshot, eventually, Client, ADMIN, BASE, RUN_ID } from './lib.mjs';

let browser;
const MOBILE = { width: 375, height: 812, mobile: true };
const DESKTOP = { width: 1280, height: 800 };

async function adminClient() {
  const admin = new Client();
  await admin.login(ADMIN.email, ADMIN.password);
  return admin;
}

async function relogin(client) {
  await client.login(client.email, client.password);
  return client;
}

function noProblems(page) {
  assert.deepEqual(page.problems, [], 'no script errors in the page');
}

before(async () => {
  const health = await fetch(`${BASE}/api/healthz`).catch(() => null);
  assert.ok(health?.ok, `the stack is not up at ${BASE} (infra/dev up)`);
  browser = await launch();
});

after(async () => {
  await browser?.close();
});

test('a fan applies in the UI, an admin approves it in the UI, and the fan becomes an organizer without logging out', async () => {
  const fan = await newFan('applicant');
  const applicant = await openAs(browser, fan, MOBILE);
  const admin = await openAs(browser, await adminClient(), DESKTOP);
  try {
    const p = applicant.page;
    await p.goto('/');
    await p.getByRole('link', { name: 'Organize' }).click();
    await p.getByRole('heading', { level: 1, name: 'Sell tickets with us' }).waitFor();
    // Empty company: refused kindly, nothing sent.
    await p.getByRole('button', { name: 'Send the application' }).click();
    assert.match(await p.locator('#apply-error').textContent(), /Enter the name of your company/);
    const company = `Applicant Co ${RUN_ID}`;
    await p.getByLabel('Company or organisation').fill(company);
    await p.getByLabel('About your events').fill('Jazz nights, 300 seats.');
    await p.getByRole('button', { name: 'Send the application' }).click();
    await p.locator('#application-status[data-status="pending"]').waitFor();
    await screenshot(p, 'admin-flow-applicant-pending');

    // The admin approves it.
    const a = admin.page;
    await a.goto('/');
    await a.getByRole('link', { name: 'Admin' }).click();
    await a.locator('#stat-pending').waitFor();
    await a.getByRole('link', { name: 'Applications' }).click();
    const row = a.locator(`#applications [data-user="${fan.user.id}"]`);
    await row.waitFor();
    assert.match(await row.textContent(), new RegExp(company));
    await row.getByRole('button', { name: `Approve ${company}` }).click();
    await row.locator('[data-f="actions"]', { hasText: 'Approved' }).waitFor();
    const { data: approved } = await (await adminClient()).get('/api/admin/organizer-applications?status=approved&per_page=100', { expect: 200 });
    assert.ok(approved.some((app) => app.user_id === fan.user.id), 'the application is approved in the API');

    // The fan checks again and gets the organizer pages in the same session.
    await p.getByRole('button', { name: 'Check again' }).click();
    await p.getByRole('heading', { level: 1, name: 'My events' }).waitFor();
    await p.getByRole('link', { name: 'New venue' }).click();
    await p.getByRole('heading', { level: 1, name: 'New venue' }).waitFor();
    noProblems(p);
    noProblems(a);
  } finally {
    await applicant.context.close();
    await admin.context.close();
  }
});

test('an admin finds a user and bans them in the UI; the banned user’s next API call fails; unban works', async () => {
  const victim = await newFan('banned');
  assert.equal((await victim.get('/api/me')).status, 200);
  const admin = await openAs(browser, await adminClient(), MOBILE);
  try {
    const a = admin.page;
    await a.goto('/admin/users');
    await a.getByLabel('Search users').fill(victim.email);
    await a.getByRole('button', { name: 'Search' }).click();
    const row = a.locator(`#users tr[data-user="${victim.user.id}"]`);
    await row.waitFor();
    await row.getByRole('button', { name: `Ban ${victim.email}` }).click();
    // No reason: refused kindly.
    await row.getByRole('button', { name: 'Confirm ban' }).click();
    assert.match(await row.locator('[role="alert"]').textContent(), /Give a reason/);
    await row.getByLabel(`Reason for banning ${victim.email}`).fill('Scalping, browser test.');
    await row.getByRole('button', { name: 'Confirm ban' }).click();
    await a.locator(`#users tr[data-user="${victim.user.id}"][data-banned="true"]`).waitFor();
    assert.match(await row.textContent(), /Banned/);
    await screenshot(a, 'admin-flow-banned');

    // The banned user's next call fails (their live token is refused within seconds).
    const started = Date.now();
    const status = await eventually(async () => {
      const { status: s } = await victim.get('/api/me');
      return s === 401 || s === 403 ? s : null;
    }, { timeout: 10000, what: 'the banned user to be refused' });
    console.log(`# banned user refused (${status}) ${Date.now() - started} ms after the ban`);
    const login = await new Client().post('/api/auth/login', { email: victim.email, password: victim.password }, { direct: true });
    assert.equal(login.status, 403);
    assert.equal(login.data.error, 'banned');

    // The audit log shows the ban.
    await a.getByRole('link', { name: 'Audit log' }).click();
    await a.locator('#audit tbody tr').first().waitFor();
    assert.match(await a.locator('#audit').textContent(), /ban/);

    // Unban from the same page.
    await a.goto(`/admin/users?q=${encodeURIComponent(victim.email)}`);
    await row.getByRole('button', { name: `Unban ${victim.email}` }).click();
    await a.locator(`#users tr[data-user="${victim.user.id}"][data-banned="false"]`).waitFor();
    await relogin(victim);
    // Each API instance reloads its ban list every 2 s, so the lifted ban takes up to that long.
    await eventually(async () => (await victim.get('/api/me')).status === 200, { timeout: 6000, what: 'the unbanned user to be let in' });
    noProblems(a);
  } finally {
    await admin.context.close();
  }
});

test('every admin page renders at 375×812 and 1280×800 (screenshots); fans may not open them', async () => {
  const pending = await newFan('pending-shot');
  await pending.post('/api/organizer/applications', { company: `Pending Co ${RUN_ID}`, details: 'Waiting for the screenshot.' }, { expect: 201 });
  for (const size of [MOBILE, DESKTOP]) {
    const { context, page } = await openAs(browser, await adminClient(), size);
    try {
      await page.goto('/admin');
      await page.locator('#stat-users').waitFor();
      const { data: stats } = await (await adminClient()).get('/api/admin/stats', { expect: 200 });
      assert.ok(stats.users >= 2);
      await screenshot(page, 'admin-stats');
      await page.goto('/admin/applications');
      await page.locator('#applications').waitFor();
      await screenshot(page, 'admin-applications');
      await page.goto(`/admin/users?q=${encodeURIComponent(RUN_ID)}`);
      await page.locator('#users').waitFor();
      await screenshot(page, 'admin-users');
      await page.goto('/admin/audit');
      await page.locator('#audit').waitFor();
      await screenshot(page, 'admin-audit');
      await page.goto('/admin/dead-letters?status=all');
      await page.locator('#dead-letters, .empty').first().waitFor();
      await screenshot(page, 'admin-dead-letters');
      const overflow = await page.evaluate(() => document.documentElement.scrollWidth - document.documentElement.clientWidth);
      assert.ok(overflow <= 0, `page overflows by ${overflow}px at ${size.width}px`);
      noProblems(page);
    } finally {
      await context.close();
    }
  }
  // Decided, so the dev stack's pending list does not fill up run after run.
  await (await adminClient()).post(`/api/admin/organizers/${pending.user.id}/reject`, undefined, { expect: 200 });
  const fan = await newFan('not-admin');
  const { context, page } = await openAs(browser, fan, DESKTOP);
  try {
    await page.goto('/admin/users');
    await page.getByRole('heading', { name: 'Not allowed' }).waitFor();
    assert.equal(await page.getByRole('link', { name: 'Admin' }).count(), 0);
  } finally {
    await context.close();
  }
});
