// /organizer/events/:id: the live sales dashboard of one event. Polls
// GET /api/events/{id}/dashboard every 2 s while the tab is visible (paused when hidden, at
// once when shown again): sold / held / free per class as bars, revenue, the waiting room's
// length and admission rate. The high-demand switch (PUT /demand-mode) sits beside it and its
// answer is shown at once. Cancel and delete at the bottom.

import { h, mount, money, dateTime, badge, spinner, errorBox, errorMessage, field, toast, announce } from '../../ui.js';
import { statusBadge } from '../fan/events.js';
import { organizerTabs } from './common.js';

const POLL_MS = 2000;
const PHASES = {
  pre: 'Pre-queue: the sale has not opened',
  frozen: 'Opening: shuffling the pre-queue',
  open: 'Admitting fans',
};

const num = (n) => Number(n || 0).toLocaleString();
const pct = (part, whole) => (whole > 0 ? (100 * part) / whole : 0);

export async function render({ root, api, params, signal, setTitle, onCleanup, navigate }) {
  const id = params.id;
  let data;
  try {
    data = await api.get(`/api/events/${encodeURIComponent(id)}/dashboard`, { signal });
  } catch (err) {
    if (err.name === 'AbortError') return;
    mount(root, h('h1', {}, 'Sales dashboard'), organizerTabs(''), errorBox(err, () => navigate(location.pathname, { replace: true })));
    return;
  }
  setTitle(`Dashboard · ${data.title}`);

  // --- skeleton (built once; figures are updated in place so focus and forms survive) -----
  const heading = h('h1', {}, data.title);
  const meta = h('p', { class: 'event-hero__meta' });
  const updated = h('p', { class: 'muted small', id: 'dash-updated' });
  const liveSummary = h('p', { class: 'visually-hidden', role: 'status', id: 'dash-announce' });
  const stats = h('div', { class: 'stat-grid stat-grid--wide', id: 'dash-stats' });
  const classes = h('div', { id: 'dash-classes' });
  const queue = h('section', { class: 'card', id: 'dash-queue', 'aria-labelledby': 'queue-heading' });
  const bookings = h('p', { class: 'muted', id: 'dash-bookings' });

  // --- high-demand switch -------------------------------------------------------------------
  const hdBox = h('input', { type: 'checkbox', id: 'hd-on', name: 'high_demand', role: 'switch' });
  const hdRate = h('input', { type: 'number', id: 'hd-rate', name: 'admit_per_minute', min: 1, max: 1000000, inputmode: 'numeric', required: true });
  const hdCap = h('input', { type: 'number', id: 'hd-cap', name: 'max_active', min: 1, max: 1000000, inputmode: 'numeric', required: true });
  const hdError = h('p', { class: 'form-error', role: 'alert', id: 'hd-error' });
  const hdState = h('p', { id: 'hd-state', role: 'status' });
  const hdSave = h('button', { type: 'submit', class: 'btn btn--primary', id: 'hd-save' }, 'Apply');
  let shownDemand = '';
  const fillDemand = (d) => {
    // Only when it changed: #hd-state is a live region, re-announcing it every poll is noise.
    const key = `${d.high_demand}|${d.admit_per_minute}|${d.max_active}`;
    if (key === shownDemand) return;
    shownDemand = key;
    hdBox.checked = d.high_demand;
    hdRate.value = d.admit_per_minute;
    hdCap.value = d.max_active;
    mount(hdState, d.high_demand
      ? [badge('High demand: on', 'warning'), ` Fans wait in the waiting room; ${num(d.admit_per_minute)} admitted a minute, at most ${num(d.max_active)} shopping at once.`]
      : [badge('High demand: off', 'neutral'), ' Fans pick seats directly, no waiting room.']);
  };
  fillDemand(data);
  let dirty = false;
  for (const el of [hdBox, hdRate, hdCap]) el.addEventListener('input', () => { dirty = true; });
  const demandForm = h('form', { class: 'card', id: 'demand-form', novalidate: true, 'aria-labelledby': 'hd-heading' },
    h('h2', { id: 'hd-heading' }, 'High-demand mode'),
    hdState,
    h('label', { class: 'switch', for: 'hd-on' }, hdBox, h('span', {}, 'Send fans through the waiting room')),
    h('div', { class: 'form-grid' },
      field({ label: 'Admit per minute', id: 'hd-rate', hint: 'How many fans the waiting room lets in each minute.' }, hdRate),
      field({ label: 'Shopping at once, at most', id: 'hd-cap', hint: 'Admitted fans still choosing seats.' }, hdCap)),
    hdError, hdSave);
  demandForm.addEventListener('submit', async (event) => {
    event.preventDefault();
    hdError.textContent = '';
    const rate = Number(hdRate.value);
    const cap = Number(hdCap.value);
    if (!Number.isInteger(rate) || rate < 1 || rate > 1000000) {
      hdError.textContent = 'Admit per minute is a whole number from 1 to 1,000,000.';
      hdRate.setAttribute('aria-invalid', 'true');
      hdRate.focus();
      return;
    }
    if (!Number.isInteger(cap) || cap < 1 || cap > 1000000) {
      hdError.textContent = 'Shopping at once is a whole number from 1 to 1,000,000.';
      hdCap.setAttribute('aria-invalid', 'true');
      hdCap.focus();
      return;
    }
    hdRate.removeAttribute('aria-invalid');
    hdCap.removeAttribute('aria-invalid');
    hdSave.disabled = true;
    hdSave.textContent = 'Applying…';
    try {
      const view = await api.put(`/api/events/${encodeURIComponent(id)}/demand-mode`, { high_demand: hdBox.checked, admit_per_minute: rate, max_active: cap });
      dirty = false;
      fillDemand(view);
      Object.assign(data, { high_demand: view.high_demand, admit_per_minute: view.admit_per_minute, max_active: view.max_active });
      paint(data);
      toast(view.high_demand ? 'High-demand mode is on: new fans go through the waiting room.' : 'High-demand mode is off.', 'success');
      poll(true);
    } catch (err) {
      hdError.textContent = errorMessage(err);
    } finally {
      hdSave.disabled = false;
      hdSave.textContent = 'Apply';
    }
  });

  // --- cancel / delete ----------------------------------------------------------------------
  const cancelBtn = h('button', { type: 'button', class: 'btn btn--danger', id: 'cancel-event' }, 'Cancel the event');
  const deleteBtn = h('button', { type: 'button', class: 'btn btn--danger', id: 'delete-event' }, 'Delete the event');
  cancelBtn.addEventListener('click', async () => {
    if (!window.confirm(`Cancel “${data.title}”? Fans can no longer buy tickets. This cannot be undone.`)) return;
    cancelBtn.disabled = true;
    try {
      await api.post(`/api/events/${encodeURIComponent(id)}/cancel`);
      toast('The event is cancelled.', 'success');
      poll(true);
    } catch (err) {
      toast(errorMessage(err), 'error');
    } finally {
      cancelBtn.disabled = false;
    }
  });
  deleteBtn.addEventListener('click', async () => {
    if (!window.confirm(`Delete “${data.title}” for good? Only an event with no bookings can be deleted.`)) return;
    deleteBtn.disabled = true;
    try {
      await api.del(`/api/events/${encodeURIComponent(id)}`);
      toast('The event is deleted.', 'success');
      navigate('/organizer');
    } catch (err) {
      toast(err.error === 'event_has_sales' ? 'This event has bookings, so it cannot be deleted. Cancel it instead.' : errorMessage(err), 'error');
      deleteBtn.disabled = false;
    }
  });
  const danger = h('section', { class: 'card danger-zone', 'aria-labelledby': 'danger-heading' },
    h('h2', { id: 'danger-heading' }, 'Cancel or delete'),
    h('p', { class: 'muted small' }, 'Cancelling stops the sale and keeps the records. Deleting is only possible before anything is booked.'),
    h('div', { class: 'row' }, cancelBtn, deleteBtn));

  root.append(
    h('div', { class: 'spread' }, heading,
      h('div', { class: 'row' }, h('a', { class: 'btn btn--small', href: `/events/${id}`, dataset: { link: '' } }, 'Public page'))),
    organizerTabs(''),
    meta, updated, liveSummary,
    h('div', { class: 'layout-dash' },
      h('div', { class: 'stack' }, stats,
        h('section', { class: 'card', 'aria-labelledby': 'classes-heading' }, h('h2', { id: 'classes-heading' }, 'Sales by class'), classes, bookings),
        queue),
      h('div', { class: 'stack' }, demandForm, danger)));

  // --- painting ------------------------------------------------------------------------------
  let lastAnnounced = 0;
  let lastSold = data.totals.sold;

  function bar(c) {
    const cap = Number(c.capacity) || 0;
    const seg = (cls, n, word) => (n > 0 ? h('span', { class: ['sales-bar__seg', cls], style: `width:${pct(n, cap)}%`, title: `${num(n)} ${word}` }) : null);
    return h('div', { class: 'sales-bar', role: 'img', 'aria-label': `${num(c.sold)} sold, ${num(c.held)} held, ${num(c.free)} free of ${num(cap)}` },
      seg('sales-bar__seg--sold', c.sold, 'sold'), seg('sales-bar__seg--held', c.held, 'held'), seg('sales-bar__seg--free', c.free, 'free'));
  }

  function stat(label, value, attrs = {}) {
    return h('div', { class: 'stat', ...attrs }, h('span', { class: 'stat__label' }, label), h('span', { class: 'stat__value' }, value));
  }

  function paint(d) {
    heading.textContent = d.title;
    mount(meta, statusBadge(d.status), d.high_demand ? badge('High demand', 'warning') : null,
      h('span', {}, `Sale opens ${dateTime(d.sale_opens_at)}`), h('span', {}, `Starts ${dateTime(d.starts_at)}`));
    const t = d.totals;
    const q = d.queue;
    mount(stats,
      stat('Sold', `${num(t.sold)} / ${num(t.capacity)}`, { id: 'stat-sold', dataset: { value: t.sold } }),
      stat('Held now', num(t.held), { id: 'stat-held', dataset: { value: t.held } }),
      stat('Free', num(t.free), { id: 'stat-free', dataset: { value: t.free } }),
      stat('Revenue', money(t.revenue, d.currency), { id: 'stat-revenue', dataset: { value: t.revenue } }),
      stat('Waiting', q ? num(q.waiting + q.pre_queue) : '—', { id: 'stat-waiting', dataset: { value: q ? q.waiting + q.pre_queue : 0 } }),
      stat('Admitted / min', q ? num(Math.round(q.admitted_per_second * 60)) : '—', { id: 'stat-rate' }));
    mount(classes, h('div', { class: 'table-wrap', tabindex: '0', role: 'region', 'aria-label': 'Sales by class' },
      h('table', { class: 'manage-table', id: 'class-table' },
        h('thead', {}, h('tr', {},
          h('th', { scope: 'col', class: 'bar-col' }, 'Class'),
          h('th', { scope: 'col', class: 'num' }, 'Sold'), h('th', { scope: 'col', class: 'num' }, 'Held'),
          h('th', { scope: 'col', class: 'num' }, 'Free'), h('th', { scope: 'col', class: 'num' }, 'Revenue'),
          h('th', { scope: 'col', class: 'num' }, 'Price'))),
        h('tbody', {}, d.classes.map((c) => h('tr', { dataset: { klass: c.class } },
          h('th', { scope: 'row', class: 'bar-col' }, c.class, bar(c)),
          h('td', { class: 'num', dataset: { f: 'sold' } }, num(c.sold)),
          h('td', { class: 'num', dataset: { f: 'held' } }, num(c.held)),
          h('td', { class: 'num', dataset: { f: 'free' } }, num(c.free)),
          h('td', { class: 'num' }, money(c.revenue, d.currency)),
          h('td', { class: 'num' }, money(c.price, d.currency))))),
        h('tfoot', {}, h('tr', {},
          h('th', { scope: 'row', class: 'bar-col' }, 'Total', bar(t)),
          h('td', { class: 'num' }, num(t.sold)), h('td', { class: 'num' }, num(t.held)),
          h('td', { class: 'num' }, num(t.free)), h('td', { class: 'num' }, money(t.revenue, d.currency)), h('td', {}))))),
      h('ul', { class: 'legend', 'aria-hidden': 'true' },
        h('li', {}, h('span', { class: 'swatch swatch--sold' }), 'Sold'),
        h('li', {}, h('span', { class: 'swatch swatch--held' }), 'Held'),
        h('li', {}, h('span', { class: 'swatch swatch--free' }), 'Free')));
    bookings.textContent = `Bookings: ${num(d.bookings.confirmed)} confirmed, ${num(d.bookings.rejected)} rejected, ${num(d.bookings.cancelled)} cancelled.`;

    if (q) {
      const phase = q.sold_out ? 'Sold out: admissions paused' : (PHASES[q.phase] || q.phase);
      mount(queue, h('h2', { id: 'queue-heading' }, 'Waiting room'),
        h('p', {}, badge(phase, q.sold_out ? 'danger' : 'accent')),
        h('dl', { class: 'figures', dataset: { phase: q.phase } },
          h('div', {}, h('dt', {}, 'In the pre-queue'), h('dd', { id: 'q-pre' }, num(q.pre_queue))),
          h('div', {}, h('dt', {}, 'Waiting'), h('dd', { id: 'q-waiting' }, num(q.waiting))),
          h('div', {}, h('dt', {}, 'Shopping now'), h('dd', { id: 'q-active' }, `${num(q.active)} of ${num(d.max_active)}`)),
          h('div', {}, h('dt', {}, 'Admitted'), h('dd', { id: 'q-rate' }, `${(q.admitted_per_second * 60).toFixed(1)} / min (set to ${num(d.admit_per_minute)})`))));
    } else {
      mount(queue, h('h2', { id: 'queue-heading' }, 'Waiting room'),
        h('p', { class: 'muted', id: 'q-none' }, d.high_demand ? 'Nobody in the waiting room yet.' : 'Off: this sale has no waiting room. Turn on high-demand mode to queue fans.'));
    }
    const stopped = d.status === 'cancelled' || d.status === 'finished';
    cancelBtn.disabled = stopped;
    hdSave.disabled = d.status === 'cancelled';
    if (!dirty && document.activeElement?.closest('#demand-form') == null) fillDemand(d);
    updated.textContent = `Updated ${new Date(d.generated_at || Date.now()).toLocaleTimeString()}`;
  }

  // Announce sales to screen readers only when they move, at most every 15 s.
  function maybeAnnounce(d) {
    const now = Date.now();
    if (d.totals.sold !== lastSold && now - lastAnnounced > 15000) {
      lastAnnounced = now;
      lastSold = d.totals.sold;
      announce(`${num(d.totals.sold)} of ${num(d.totals.capacity)} seats sold.`);
    }
  }

  paint(data);

  // --- polling --------------------------------------------------------------------------------
  let timer = null;
  let inflight = false;
  let failures = 0;
  async function poll(now = false) {
    clearTimeout(timer);
    timer = null;
    if (signal.aborted) return;
    if (document.visibilityState !== 'visible' && !now) return; // resumed by visibilitychange
    if (!inflight) {
      inflight = true;
      try {
        data = await api.get(`/api/events/${encodeURIComponent(id)}/dashboard`, { signal });
        failures = 0;
        updated.classList.remove('form-error');
        paint(data);
        maybeAnnounce(data);
      } catch (err) {
        if (err.name === 'AbortError') return;
        failures += 1;
        updated.classList.add('form-error');
        updated.textContent = `Live figures paused: ${errorMessage(err)} Retrying…`;
      } finally {
        inflight = false;
      }
    }
    if (!signal.aborted && document.visibilityState === 'visible') {
      timer = setTimeout(poll, failures ? Math.min(30000, POLL_MS * 2 ** failures) : POLL_MS);
    }
  }
  const onVisible = () => { if (document.visibilityState === 'visible') poll(true); };
  document.addEventListener('visibilitychange', onVisible);
  onCleanup(() => {
    clearTimeout(timer);
    document.removeEventListener('visibilitychange', onVisible);
  });
  timer = setTimeout(poll, POLL_MS);
}
