// Log in. ?next= brings the fan back where they were (only paths on this site).
import { h, field, errorMessage } from '../../ui.js';

/**
 * Where ?next= may lead after logging in: a path on this site, else the home page. A browser
 * reads `/\evil.example` as `//evil.example` and drops tabs and newlines from a URL
 * (`/<TAB>/evil.example`), so "starts with one slash" is not enough: the value must have no
 * backslash or control character, and parsed as the browser parses it, stay on this origin.
 */
export function safeNext(query) {
  const next = query.get('next');
  if (!next || !next.startsWith('/') || next.startsWith('//') || /[\\\u0000-\u001f\u007f]/.test(next)) return '/';
  let url;
  try {
    url = new URL(next, location.origin);
  } catch {
    return '/';
  }
  const path = url.pathname + url.search + url.hash;
  return url.origin === location.origin && path.startsWith('/') && !path.startsWith('//') ? path : '/';
}

export function render({ root, session, navigate, query }) {
  const next = safeNext(query);
  if (session.loggedIn) {
    navigate(next, { replace: true });
    return;
  }
  const error = h('p', { class: 'form-error', role: 'alert', id: 'login-error' });
  const submit = h('button', { type: 'submit', class: 'btn btn--primary btn--block' }, 'Log in');
  const form = h('form', { class: 'card card--narrow', novalidate: true },
    h('h1', {}, 'Log in'),
    field({ label: 'Email', id: 'email', type: 'email', autocomplete: 'email', required: true }),
    field({ label: 'Password', id: 'password', type: 'password', autocomplete: 'current-password', required: true }),
    error,
    submit,
    h('p', { class: 'muted small', style: 'margin-top: 1rem' }, 'New here? ',
      h('a', { href: `/signup${next !== '/' ? `?next=${encodeURIComponent(next)}` : ''}`, dataset: { link: '' } }, 'Create an account')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    const email = form.elements.email.value.trim();
    const password = form.elements.password.value;
    if (!email || !password) {
      error.textContent = 'Enter your email and password.';
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Logging in…';
    try {
      await session.login(email, password);
      navigate(next, { replace: true });
    } catch (err) {
      error.textContent = errorMessage(err);
      form.elements.password.setAttribute('aria-invalid', 'true');
      form.elements.password.focus();
    } finally {
      submit.disabled = false;
      submit.textContent = 'Log in';
    }
  });
  root.append(form);
}
