// Sign up, then log straight in.
import { h, field, errorMessage } from '../../ui.js';
import { safeNext } from './login.js';

export function render({ root, session, navigate, query }) {
  const next = safeNext(query);
  if (session.loggedIn) {
    navigate(next, { replace: true });
    return;
  }
  const error = h('p', { class: 'form-error', role: 'alert', id: 'signup-error' });
  const submit = h('button', { type: 'submit', class: 'btn btn--primary btn--block' }, 'Create account');
  const form = h('form', { class: 'card card--narrow', novalidate: true },
    h('h1', {}, 'Create your account'),
    field({ label: 'Name', id: 'name', type: 'text', autocomplete: 'name', required: true, maxlength: 100 }),
    field({ label: 'Email', id: 'email', type: 'email', autocomplete: 'email', required: true }),
    field({ label: 'Password', id: 'password', type: 'password', autocomplete: 'new-password', required: true, minlength: 8, hint: 'At least 8 characters.' }),
    error,
    submit,
    h('p', { class: 'muted small', style: 'margin-top: 1rem' }, 'Already have an account? ',
      h('a', { href: `/login${next !== '/' ? `?next=${encodeURIComponent(next)}` : ''}`, dataset: { link: '' } }, 'Log in')));
  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    error.textContent = '';
    const name = form.elements.name.value.trim();
    const email = form.elements.email.value.trim();
    const password = form.elements.password.value;
    for (const input of form.querySelectorAll('input')) input.removeAttribute('aria-invalid');
    const problem = !name ? ['name', 'Tell us your name.']
      : !email.includes('@') ? ['email', 'Enter a valid email address.']
        : password.length < 8 ? ['password', 'Choose a password of at least 8 characters.'] : null;
    if (problem) {
      error.textContent = problem[1];
      form.elements[problem[0]].setAttribute('aria-invalid', 'true');
      form.elements[problem[0]].focus();
      return;
    }
    submit.disabled = true;
    submit.textContent = 'Creating…';
    try {
      await session.register(name, email, password);
      navigate(next, { replace: true });
    } catch (err) {
      error.textContent = errorMessage(err);
    } finally {
      submit.disabled = false;
      submit.textContent = 'Create account';
    }
  });
  root.append(form);
}
