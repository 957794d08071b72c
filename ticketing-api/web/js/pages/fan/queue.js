// The waiting room of a high-demand event: the fan's place, a progress bar, the ETA, and a
// countdown to the opening during the pre-queue. Updates come by push (server-sent events,
// authenticated by the queue token in the URL since EventSource sends no headers); when the
// stream fails, polling takes over at the server's poll_after_ms. Once admitted, the admission
// token is kept for this event and the fan goes to the seat map.

import { h, mount, clock, dateTime, roughDuration, spinner, errorBox, errorMessage, toast } from '../../ui.js';
import { store } from '../../store.js';

export async function render(ctx) {
  const { root, api, params, navigate, signal, onCleanup, setTitle } = ctx;
  const eventId = params.id;
  mount(root, spinner('Taking your place in the queue…'));

  let event;
  let status;
  try {
    event = await api.get(`/api/events/${encodeURIComponent(eventId)}`, { signal });
    setTitle(`Waiting room · ${event.title}`);
    const joined = await api.post(`/api/queue/${encodeURIComponent(eventId)}/join`, undefined, { signal });
    store.setQueueToken(eventId, joined.queue_token);
    status = joined;
  } catch (err) {
    if (err.name === 'AbortError') return;
    mount(root, h('h1', {}, 'Waiting room'), errorBox(err, () => render(ctx)),
      h('p', {}, h('a', { href: `/events/${eventId}`, dataset: { link: '' } }, 'Back to the event')));
    return;
  }

  const queueToken = store.queueToken(eventId);
  let highest = Math.max(1, status.position || 1);
  let source = null;
  let pollTimer = null;
  let tickTimer = null;
  let done = false;
  let via = 'join';

  const position = h('span', { class: 'big-number', id: 'queue-position' });
  const live = h('p', { id: 'queue-live', role: 'status', 'aria-live': 'polite', 'aria-atomic': 'true' });
  const bar = h('div', { class: 'progress__bar', style: 'width:0%' });
  const progress = h('div', {
    class: 'progress', role: 'progressbar', 'aria-label': 'Your progress to the front', 'aria-valuemin': '0', 'aria-valuemax': '100', 'aria-valuenow': '0',
  }, bar);
  const eta = h('span', { class: 'stat__value', id: 'queue-eta' });
  const stateText = h('span', { class: 'stat__value', id: 'queue-state' });
  const opening = h('div', { id: 'queue-opening' });
  const action = h('div', {});
  const card = h('section', { class: 'card queue-card', 'aria-labelledby': 'queue-heading' },
    h('h1', { id: 'queue-heading' }, 'You are in the waiting room'),
    h('p', { class: 'muted' }, event.title, ' · ', dateTime(event.starts_at)),
    opening,
    h('p', { class: 'muted small', style: 'margin:1rem 0 0' }, 'Your place in line'),
    position,
    progress,
    live,
    h('div', { class: 'stat-grid' },
      h('div', { class: 'stat' }, h('span', { class: 'stat__label' }, 'Estimated wait'), eta),
      h('div', { class: 'stat' }, h('span', { class: 'stat__label' }, 'Status'), stateText)),
    h('p', { class: 'muted small' }, 'Keep this page open: it updates by itself, and you keep your place if you reload. When it is your turn you will go straight to the seat map.'),
    action);
  mount(root, card);

  const WORDS = { pre_queue: 'Before opening', waiting: 'In line', admitted: 'Your turn!', expired: 'Place expired' };
  let lastAnnounced = null;

  function tickOpening() {
    const seconds = (new Date(event.sale_opens_at).getTime() - Date.now()) / 1000;
    if (status.state === 'pre_queue' && seconds > 0) {
      mount(opening, h('div', { class: 'notice notice--info' },
        h('p', { style: 'margin:0' }, 'The sale opens in ', h('strong', { class: 'countdown', id: 'queue-countdown' }, clock(seconds)),
          '. Everyone who joins before then gets a random place at the opening, so there is no need to rush.')));
    } else {
      opening.replaceChildren();
    }
  }

  function show(next, from) {
    if (done) return;
    status = { ...status, ...next };
    via = from;
    root.dataset.queueVia = from;
    if (status.state === 'waiting' || status.state === 'pre_queue') highest = Math.max(highest, status.position || 0);
    const pos = status.position || 0;
    const drawLater = status.state === 'pre_queue' && !pos;
    position.textContent = status.state === 'admitted' ? '✓' : drawLater ? 'Drawn at the opening' : pos.toLocaleString();
    position.classList.toggle('big-number--text', drawLater);
    // Progress from the first place the fan saw to the front; nothing yet before the opening.
    const pct = status.state === 'admitted' ? 100
      : status.state === 'pre_queue' || status.state === 'expired' ? 0
        : highest > 0 ? Math.round((1 - (pos - 1) / highest) * 100) : 0;
    bar.style.width = `${Math.max(0, Math.min(100, pct))}%`;
    progress.setAttribute('aria-valuenow', String(Math.max(0, Math.min(100, pct))));
    eta.textContent = status.state === 'admitted' ? 'Now' : roughDuration(status.eta_seconds || 0);
    stateText.textContent = WORDS[status.state] || status.state;
    card.dataset.state = status.state;
    tickOpening();
    // Announce changes of place, not every tick.
    const sentence = status.state === 'admitted' ? 'It is your turn! Taking you to the seats.'
      : status.state === 'expired' ? 'Your place in the queue expired.'
        : status.state === 'pre_queue' ? `You are in the pre-queue. The sale opens at ${dateTime(event.sale_opens_at)}.`
          : `You are number ${pos.toLocaleString()} in line. Estimated wait ${roughDuration(status.eta_seconds || 0)}.`;
    if (sentence !== lastAnnounced) {
      live.textContent = sentence;
      lastAnnounced = sentence;
    }
    if (status.state === 'admitted' && status.admission_token) admit(status.admission_token);
    else if (status.state === 'expired') expired();
  }

  function stop() {
    done = true;
    source?.close();
    source = null;
    clearTimeout(pollTimer);
    clearInterval(tickTimer);
  }

  function admit(token) {
    // `via`: how the admission reached this tab (join, push or poll), for support and tests.
    store.setAdmission(eventId, { token, at: Date.now(), via });
    stop();
    mount(action, h('a', { class: 'btn btn--primary btn--block', href: `/events/${eventId}`, dataset: { link: '' } }, 'Choose your seats'));
    toast('It is your turn! Pick your seats now.', 'success');
    setTimeout(() => { if (!signal.aborted) navigate(`/events/${eventId}`); }, 1200);
  }

  function expired() {
    stop();
    store.setQueueToken(eventId, null);
    mount(action, h('button', { type: 'button', class: 'btn btn--primary btn--block', on: { click: () => render(ctx) } }, 'Join again'));
  }

  async function poll() {
    clearTimeout(pollTimer);
    if (done) return;
    try {
      const next = await api.get(`/api/queue/${eventId}/status`, { headers: { 'X-Queue-Token': queueToken }, auth: false, signal });
      show(next, 'poll');
    } catch (err) {
      if (err.name === 'AbortError') return;
      if (err.status === 401 || err.status === 403) {
        toast(errorMessage(err), 'error');
        expired();
        return;
      }
    }
    if (!done) pollTimer = setTimeout(poll, Math.max(500, status.poll_after_ms || 2000));
  }

  function listen() {
    if (!('EventSource' in window)) {
      poll();
      return;
    }
    source = new EventSource(`/api/queue/${eventId}/events?queue_token=${encodeURIComponent(queueToken)}`);
    source.addEventListener('status', (message) => {
      try {
        show(JSON.parse(message.data), 'push');
      } catch {
        // ignore a malformed event
      }
    });
    source.addEventListener('error', () => {
      // The stream broke (a proxy timeout, the service restarting): poll instead.
      source?.close();
      source = null;
      if (!done) pollTimer = setTimeout(poll, Math.max(500, status.poll_after_ms || 2000));
    });
  }

  onCleanup(stop);
  tickTimer = setInterval(tickOpening, 1000);
  show(status, 'join');
  if (!done) listen();
  return () => stop();
}
