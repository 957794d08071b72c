// My tickets: every booking of the fan, newest first, with a PDF per ticket. The PDF needs the
// Bearer token, so it is fetched here, turned into a blob and handed over as a download.

import { h, mount, money, dateTime, badge, spinner, errorBox, toastError } from '../../ui.js';

const STATUS = { confirmed: ['Confirmed', 'success'], pending: ['Confirming…', 'warning'], rejected: ['Not completed', 'danger'] };

/** A button that downloads ticket `t`'s PDF ({id, seat_label}). */
export function downloadButton(api, t) {
  const button = h('button', { type: 'button', class: 'btn btn--small', dataset: { ticket: t.id }, 'aria-label': `Download the PDF ticket for seat ${t.seat_label}` }, 'Download PDF');
  button.addEventListener('click', async () => {
    button.disabled = true;
    const text = button.textContent;
    button.textContent = 'Preparing…';
    try {
      const blob = await api.blob(`/api/tickets/${t.id}/pdf`);
      const url = URL.createObjectURL(blob);
      const link = h('a', { href: url, download: `ticket-${t.seat_label}.pdf`, class: 'visually-hidden' }, 'PDF');
      document.body.appendChild(link);
      link.click();
      link.remove();
      setTimeout(() => URL.revokeObjectURL(url), 60000);
    } catch (err) {
      toastError(err);
    } finally {
      button.disabled = false;
      button.textContent = text;
    }
  });
  return button;
}

export async function render({ root, api, signal }) {
  root.append(h('h1', {}, 'My tickets'));
  const list = h('div', { class: 'stack' }, spinner('Loading your tickets…'));
  root.append(list);
  const load = async () => {
    try {
      const bookings = await api.get('/api/me/bookings', { signal });
      const items = Array.isArray(bookings) ? bookings : bookings.items || [];
      if (!items.length) {
        mount(list, h('div', { class: 'empty' }, h('p', {}, 'No tickets yet.'), h('a', { class: 'btn btn--primary', href: '/events', dataset: { link: '' } }, 'Find an event')));
        return;
      }
      mount(list, items.map((b) => {
        const [text, kind] = STATUS[b.status] || [b.status, 'neutral'];
        return h('article', { class: 'card ticket-card', dataset: { booking: b.booking_id } },
          h('div', { class: 'spread' }, h('h2', { style: 'margin:0' }, h('a', { href: `/events/${b.event_id}`, dataset: { link: '' } }, b.event_title)), badge(text, kind)),
          h('p', { class: 'muted small', style: 'margin:0' }, `Booked ${dateTime(b.created_at)} · ${money(b.total, b.currency)}`),
          b.status === 'confirmed'
            ? h('ul', { class: 'ticket-list' }, b.tickets.map((t) => h('li', {},
              h('span', {}, h('strong', {}, `Seat ${t.seat_label}`), ' · ', t.class, t.checked_in_at ? ' · checked in' : ''),
              downloadButton(api, t))))
            : b.status === 'pending'
              ? h('p', {}, h('a', { href: `/bookings/${b.booking_id}`, dataset: { link: '' } }, 'Follow this booking'))
              : h('p', { class: 'muted' }, b.reason ? `Reason: ${b.reason.replaceAll('_', ' ')}.` : 'The seats could not be booked.'));
      }));
    } catch (err) {
      if (err.name === 'AbortError') return;
      mount(list, errorBox(err, load));
    }
  };
  await load();
}
