// The one way the UI talks to the API. JSON in and out; the access token lives only in this
// module's memory (never in storage a script injection could read later), the refresh token in
// an HttpOnly cookie the browser sends to /api/auth only. A 401 triggers one refresh (shared by
// every request waiting on it) and one retry. Every failure is thrown as an ApiError with the
// API's {status, error, message} (status 0, error "network" when the server was not reached).

export class ApiError extends Error {
  constructor(status, error, message, body = {}) {
    super(message || error);
    this.name = 'ApiError';
    this.status = status;
    this.error = error;
    this.body = body;
    this.retryAfter = null;
  }
}

let accessToken = null;
let refreshing = null;
const tokenListeners = new Set();

export function getAccessToken() {
  return accessToken;
}

export function setAccessToken(token) {
  accessToken = token || null;
  for (const fn of tokenListeners) fn(accessToken);
}

/** Called with the new token (or null) whenever it changes. */
export function onTokenChange(fn) {
  tokenListeners.add(fn);
  return () => tokenListeners.delete(fn);
}

/** Trades the refresh cookie for a new access token; resolves to the token or null. */
export function refresh() {
  if (!refreshing) {
    refreshing = (async () => {
      try {
        const response = await fetch('/api/auth/refresh', {
          method: 'POST',
          credentials: 'same-origin',
          headers: { Accept: 'application/json' },
        });
        if (!response.ok) {
          setAccessToken(null);
          return null;
        }
        const body = await response.json();
        setAccessToken(body.access_token);
        return body.access_token;
      } catch {
        return accessToken;
      } finally {
        setTimeout(() => { refreshing = null; }, 0);
      }
    })();
  }
  return refreshing;
}

async function toError(response) {
  let body = {};
  try {
    const text = await response.text();
    body = text ? JSON.parse(text) : {};
  } catch {
    body = {};
  }
  const err = new ApiError(
    response.status,
    body.error || (response.status === 429 ? 'rate_limited' : response.status >= 500 ? 'service_unavailable' : 'error'),
    body.message || response.statusText,
    body,
  );
  const retryAfter = Number(response.headers.get('Retry-After'));
  if (Number.isFinite(retryAfter) && retryAfter > 0) err.retryAfter = retryAfter;
  return err;
}

/**
 * request('/api/events', {method, body, headers, auth, raw, signal}).
 * `body` (an object) is sent as JSON; `raw: true` resolves to the Response (for PDFs and
 * text); otherwise the parsed JSON (or null for 204). `auth: false` sends no token.
 */
export async function request(path, options = {}) {
  const { method = 'GET', body, headers = {}, auth = true, raw = false, signal, retried = false } = options;
  const init = {
    method,
    credentials: 'same-origin',
    headers: { Accept: 'application/json', ...headers },
    signal,
  };
  if (body !== undefined) {
    init.headers['Content-Type'] = 'application/json';
    init.body = JSON.stringify(body);
  }
  if (auth && accessToken) init.headers.Authorization = `Bearer ${accessToken}`;
  let response;
  try {
    response = await fetch(path, init);
  } catch (cause) {
    if (cause?.name === 'AbortError') throw cause;
    throw new ApiError(0, 'network', 'The server could not be reached.');
  }
  if (response.status === 401 && auth && !retried && !path.startsWith('/api/auth/')) {
    const fresh = await refresh();
    if (fresh) return request(path, { ...options, retried: true });
  }
  if (!response.ok) throw await toError(response);
  if (raw) return response;
  if (response.status === 204) return null;
  const type = response.headers.get('Content-Type') || '';
  return type.includes('json') ? response.json() : response.text();
}

export const api = {
  request,
  get: (path, options) => request(path, { ...options, method: 'GET' }),
  post: (path, body, options) => request(path, { ...options, method: 'POST', body }),
  put: (path, body, options) => request(path, { ...options, method: 'PUT', body }),
  patch: (path, body, options) => request(path, { ...options, method: 'PATCH', body }),
  del: (path, options) => request(path, { ...options, method: 'DELETE' }),
  /** Fetches a file with the Bearer token and resolves to a Blob. */
  async blob(path, options) {
    const response = await request(path, { ...options, raw: true, headers: { Accept: '*/*' } });
    return response.blob();
  },
  refresh,
  get token() {
    return accessToken;
  },
};
