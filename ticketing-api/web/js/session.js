// Who is logged in. The user comes from GET /api/me; the session survives a reload through
// the refresh cookie (init() trades it for an access token). Listeners hear every change.

import { api, setAccessToken } from './api.js';

const listeners = new Set();
let user = null;
let ready = null;

function emit() {
  for (const fn of listeners) {
    try {
      fn(user);
    } catch (err) {
      console.error(err);
    }
  }
}

async function loadMe() {
  try {
    user = await api.get('/api/me');
  } catch {
    user = null;
  }
  emit();
  return user;
}

export const session = {
  get user() {
    return user;
  },
  get loggedIn() {
    return user !== null;
  },
  get role() {
    return user?.role ?? null;
  },
  /** True when the user has `role`; an admin counts as every role. */
  hasRole(role) {
    if (!role) return true;
    if (!user) return false;
    return user.role === role || user.role === 'admin';
  },
  /** Restores a session from the refresh cookie, once; resolves to the user or null. */
  init() {
    if (!ready) {
      ready = (async () => {
        const token = await api.refresh();
        if (!token) return null;
        return loadMe();
      })();
    }
    return ready;
  },
  async login(email, password) {
    const body = await api.post('/api/auth/login', { email, password }, { auth: false });
    setAccessToken(body.access_token);
    user = body.user ?? null;
    return loadMe();
  },
  async register(name, email, password) {
    await api.post('/api/auth/register', { name, email, password }, { auth: false });
    return this.login(email, password);
  },
  async logout() {
    try {
      await api.post('/api/auth/logout', undefined, { auth: false });
    } catch {
      // Logged out locally whatever the server says.
    }
    setAccessToken(null);
    user = null;
    sessionStorage.clear();
    emit();
  },
  /** Reloads /api/me (after a role change, say). */
  reload: loadMe,
  /** fn(user) on every change; returns an unsubscribe function. */
  onChange(fn) {
    listeners.add(fn);
    return () => listeners.delete(fn);
  },
};
