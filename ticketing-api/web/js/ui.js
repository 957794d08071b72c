// Tiny DOM helpers, toasts and formatting. Data from the API only ever reaches the page as
// text nodes or attribute values (h() never parses HTML), so nothing a user or an organizer
// typed can run as markup.

/**
 * Creates an element. `attrs`: plain attributes; `class`, `style` (string), `dataset`
 * (object), `on` (object of event listeners), boolean values set/omit the attribute,
 * `null`/`undefined`/`false` skip it. Children: nodes, strings (as text), arrays, or falsy (skipped).
 */
export function h(tag, attrs = {}, ...children) {
  const el = tag === 'svg' || attrs?.ns === 'svg'
    ? document.createElementNS('http://www.w3.org/2000/svg', tag)
    : document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false || name === 'ns') continue;
    if (name === 'on') {
      for (const [type, fn] of Object.entries(value)) el.addEventListener(type, fn);
    } else if (name === 'dataset') {
      for (const [key, v] of Object.entries(value)) el.dataset[key] = String(v);
    } else if (name === 'class') {
      el.setAttribute('class', Array.isArray(value) ? value.filter(Boolean).join(' ') : value);
    } else if (!(el instanceof SVGElement) && name in el && typeof el[name] !== 'function' && !name.includes('-') && name !== 'list' && name !== 'form') {
      // Properties such as value, checked, disabled, htmlFor.
      if (name === 'innerHTML' || name === 'outerHTML') throw new Error('h(): no HTML strings');
      el[name] = value;
    } else {
      el.setAttribute(name, value === true ? '' : String(value));
    }
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children) {
    if (child === null || child === undefined || child === false || child === '') continue;
    if (Array.isArray(child)) append(el, child);
    else if (child instanceof Node) el.appendChild(child);
    else el.appendChild(document.createTextNode(String(child)));
  }
}

/** Replaces an element's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** Escapes text for the rare place a string of HTML is unavoidable (none today). */
export function escapeHtml(text) {
  return String(text).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c]);
}

// --- formatting ---------------------------------------------------------------------------

const LOCALE = navigator.language || 'en';
const moneyFormats = new Map();

function moneyFormat(currency) {
  let format = moneyFormats.get(currency);
  if (!format) {
    try {
      format = new Intl.NumberFormat(LOCALE, { style: 'currency', currency });
    } catch {
      format = new Intl.NumberFormat(LOCALE, { style: 'currency', currency: 'EUR' });
    }
    moneyFormats.set(currency, format);
  }
  return format;
}

/** Integer minor units plus an ISO currency code → "€40.00" (the currency's own decimals). */
export function money(minor, currency) {
  if (minor === null || minor === undefined || !currency) return '';
  const format = moneyFormat(currency);
  const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
  return format.format(Number(minor) / 10 ** digits);
}

const dateFormat = new Intl.DateTimeFormat(LOCALE, { dateStyle: 'medium', timeStyle: 'short' });
const dayFormat = new Intl.DateTimeFormat(LOCALE, { weekday: 'short', day: 'numeric', month: 'short' });

/** RFC 3339 → "21 Nov 2026, 20:00" in the fan's time zone. */
export function dateTime(value) {
  if (!value) return '';
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? String(value) : dateFormat.format(date);
}

export function day(value) {
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? '' : dayFormat.format(date);
}

/** Seconds → "4:05" or "1:02:03". */
export function clock(totalSeconds) {
  const s = Math.max(0, Math.floor(totalSeconds));
  const hours = Math.floor(s / 3600);
  const minutes = Math.floor((s % 3600) / 60);
  const seconds = String(s % 60).padStart(2, '0');
  return hours > 0 ? `${hours}:${String(minutes).padStart(2, '0')}:${seconds}` : `${minutes}:${seconds}`;
}

/** Seconds → "about 3 minutes", for ETAs. */
export function roughDuration(totalSeconds) {
  const s = Math.max(0, Math.round(totalSeconds));
  if (s < 45) return 'less than a minute';
  const minutes = Math.round(s / 60);
  if (minutes < 60) return minutes === 1 ? 'about a minute' : `about ${minutes} minutes`;
  const hours = Math.round(minutes / 6) / 10;
  return hours === 1 ? 'about an hour' : `about ${hours} hours`;
}

export function plural(n, one, many) {
  return `${n} ${n === 1 ? one : many}`;
}

// --- kind error messages ------------------------------------------------------------------

const MESSAGES = {
  network: 'We could not reach the server. Check your connection and try again.',
  seats_unavailable: 'Sorry, someone just took one of those seats. Please pick another.',
  seats_already_sold: 'Sorry, one of those seats has just been sold. Please pick another.',
  hold_expired: 'Your hold on these seats ran out, so they went back on sale. Please pick again.',
  admission_required: 'This sale is busy: please take your place in the waiting room first.',
  invalid_admission: 'Your turn in the waiting room has ended. Please rejoin the waiting room.',
  sale_not_open: 'The sale has not opened yet.',
  sale_closed: 'The sale for this event has closed.',
  event_cancelled: 'This event has been cancelled.',
  too_many_seats: 'That is more seats than one order may have.',
  no_seats: 'Pick at least one seat first.',
  unknown_class: 'That ticket class does not exist any more; reload the page.',
  unknown_seats: 'Some of those seats do not exist; reload the page.',
  registration_in_progress: 'Your booking is still being processed. One moment…',
  invalid_credentials: 'That email and password do not match an account.',
  email_taken: 'There is already an account with that email. Try logging in.',
  weak_password: 'Choose a password of at least 8 characters.',
  invalid_email: 'That does not look like an email address.',
  banned: 'This account has been suspended.',
  rate_limited: 'Too many attempts. Please wait a moment and try again.',
  service_unavailable: 'The service is very busy right now. Please try again in a few seconds.',
  unavailable: 'The service is very busy right now. Please try again in a few seconds.',
  unauthorized: 'Please log in to continue.',
  token_expired: 'Your session has ended. Please log in again.',
  invalid_token: 'Your session has ended. Please log in again.',
  not_found: 'We could not find that.',
  forbidden: 'You do not have access to that.',
  payload_too_large: 'That is too large to send.',
  internal: 'Something went wrong on our side. Please try again.',
};

/** A kind sentence for an API error ({status, error, message}). */
export function errorMessage(err) {
  if (!err) return MESSAGES.internal;
  if (err.error === 'seats_unavailable' && Array.isArray(err.body?.seat_ids) && err.body.seat_ids.length === 0) {
    return 'Sorry, there are not enough seats left in that class.';
  }
  const wait = Number(err.retryAfter) > 0 ? Math.ceil(Number(err.retryAfter)) : null;
  if (err.status === 429) {
    return wait ? `Too many attempts right now. Please try again in ${plural(wait, 'second', 'seconds')}.` : MESSAGES.rate_limited;
  }
  if (err.status === 503 && wait) {
    return `The service is very busy right now. Please try again in ${plural(wait, 'second', 'seconds')}.`;
  }
  if (MESSAGES[err.error]) return MESSAGES[err.error];
  if (err.status === 503 || err.status === 502 || err.status === 504) return MESSAGES.service_unavailable;
  if (err.status >= 500) return MESSAGES.internal;
  return err.message || MESSAGES.internal;
}

// --- toasts -------------------------------------------------------------------------------

/** Shows a short message in the polite live region; `kind`: info, success, error. */
export function toast(message, kind = 'info', { timeout = kind === 'error' ? 8000 : 4000 } = {}) {
  const region = document.getElementById('toasts');
  if (!region) return;
  const close = h('button', { type: 'button', class: 'toast__close', 'aria-label': 'Dismiss message' }, '×');
  const item = h('div', { class: ['toast', `toast--${kind}`], dataset: { kind } },
    h('span', { class: 'toast__text' }, message), close);
  const remove = () => item.remove();
  close.addEventListener('click', remove);
  region.appendChild(item);
  // Two at a time: on a phone more would cover the page.
  while (region.children.length > 2) region.firstElementChild.remove();
  if (timeout) setTimeout(remove, timeout);
  return item;
}

/** Shows an API error as a toast, kindly. */
export function toastError(err) {
  return toast(errorMessage(err), 'error');
}

/** Announces text to screen readers without showing it. */
export function announce(text) {
  const region = document.getElementById('alerts');
  if (!region) return;
  region.textContent = '';
  setTimeout(() => { region.textContent = text; }, 50);
}

// --- small components ---------------------------------------------------------------------

export function spinner(label = 'Loading…') {
  return h('p', { class: 'loading', role: 'status' }, h('span', { class: 'spinner', 'aria-hidden': 'true' }), label);
}

export function badge(text, kind = 'neutral') {
  return h('span', { class: ['badge', `badge--${kind}`] }, text);
}

/** A labelled form field: label, control, optional hint and error slot. */
export function field({ label, id, hint, ...attrs }, control = null) {
  const input = control || h('input', { id, name: id, ...attrs });
  if (!input.id) input.id = id;
  const hintEl = hint ? h('p', { class: 'field__hint', id: `${id}-hint` }, hint) : null;
  if (hintEl) input.setAttribute('aria-describedby', `${id}-hint`);
  return h('div', { class: 'field' }, h('label', { for: input.id }, label), input, hintEl);
}

/**
 * Starts a form's check: clears its error line (`error`) and every `aria-invalid` mark, and
 * returns `fail(message, el)`, which shows the message and marks and focuses `el` (if any).
 */
export function formCheck(form, error) {
  error.textContent = '';
  for (const el of form.querySelectorAll('[aria-invalid]')) el.removeAttribute('aria-invalid');
  return (message, el) => {
    error.textContent = message;
    if (el) {
      el.setAttribute('aria-invalid', 'true');
      el.focus();
    }
  };
}

/** An error box with a retry button, for a page that could not load. */
export function errorBox(err, retry) {
  return h('div', { class: 'notice notice--error', role: 'alert' },
    h('p', {}, errorMessage(err)),
    retry ? h('button', { type: 'button', class: 'btn', on: { click: retry } }, 'Try again') : null);
}

/** A random UUID (crypto.randomUUID needs a secure context; 127.0.0.1 is one, plain http hosts are not). */
export function uuid() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = [...b].map((v) => v.toString(16).padStart(2, '0')).join('');
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}
