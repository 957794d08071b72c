// Boot and router. Paths are real (history API, `/events/ID`); nginx answers index.html for
// every path that is not a file, so a reload or a shared link lands on the right page.
//
// A page module exports render(ctx) and may return a cleanup function. ctx:
//   params, query (URLSearchParams), api, session, navigate(path, {replace}),
//   signal (aborted when the page is left), onCleanup(fn), setTitle(text), root (<main>)

import { api } from './api.js';
import { session } from './session.js';
import { routes, notFound } from './routes.js';
import { h, mount, spinner, errorBox } from './ui.js';
import { push } from './push.js';

const app = document.getElementById('app');
const SITE = 'Ticketing';
let current = null; // {controller, cleanups}
let navigation = 0;

function compile(path) {
  const names = [];
  const pattern = path === '*' ? '.*' : path
    .split('/')
    .map((part) => {
      if (part.startsWith(':')) {
        names.push(part.slice(1));
        return '([^/]+)';
      }
      return part.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
    })
    .join('/');
  return { regex: new RegExp(`^${pattern}/?$`), names };
}

const table = routes.map((route) => ({ ...route, ...compile(route.path) }));

export function match(pathname) {
  for (const route of table) {
    const found = route.regex.exec(pathname);
    if (found) {
      const params = {};
      route.names.forEach((name, i) => { params[name] = decodeURIComponent(found[i + 1]); });
      return { route, params };
    }
  }
  return { route: notFound, params: {} };
}

/** Moves within this site only: a target a browser would read as another site goes home. */
export function navigate(to, { replace = false, focus = true } = {}) {
  let url = new URL(to, location.origin);
  if (url.origin !== location.origin) {
    console.warn('navigate: not following a link to another site', url.origin);
    url = new URL('/', location.origin);
  }
  const target = url.pathname + url.search + url.hash;
  if (replace) history.replaceState({}, '', target);
  else if (target !== location.pathname + location.search + location.hash) history.pushState({}, '', target);
  render({ focus });
}

function setTitle(text) {
  document.title = text ? `${text} · ${SITE}` : SITE;
}

function leave() {
  if (!current) return;
  current.controller.abort();
  for (const fn of current.cleanups.splice(0)) {
    try {
      fn();
    } catch (err) {
      console.error(err);
    }
  }
  current = null;
}

async function render({ focus = true } = {}) {
  const seq = ++navigation;
  leave();
  const { route, params } = match(location.pathname);
  const query = new URLSearchParams(location.search);
  await session.init();
  if (seq !== navigation) return;
  renderNav();
  if ((route.auth || route.role) && !session.loggedIn) {
    const next = location.pathname + location.search;
    navigate(`/login?next=${encodeURIComponent(next)}`, { replace: true });
    return;
  }
  if (route.role && !session.hasRole(route.role)) {
    setTitle('Not allowed');
    mount(app, h('h1', {}, 'Not allowed'), h('p', {}, 'Your account cannot open this page.'),
      h('p', {}, h('a', { href: '/', dataset: { link: '' } }, 'Back to the events')));
    return;
  }
  const controller = new AbortController();
  const cleanups = [];
  current = { controller, cleanups };
  setTitle(route.title);
  // A page's data-* marks on <main> (state hooks for tests and styles) end with the page.
  for (const key of Object.keys(app.dataset)) delete app.dataset[key];
  app.dataset.route = route.path;
  app.setAttribute('aria-busy', 'true');
  mount(app, spinner());
  try {
    const module = await route.load();
    if (seq !== navigation) return;
    const ctx = {
      params,
      query,
      api,
      session,
      push,
      navigate,
      signal: controller.signal,
      onCleanup: (fn) => cleanups.push(fn),
      setTitle,
      root: app,
    };
    app.replaceChildren();
    const cleanup = await module.render(ctx);
    if (typeof cleanup === 'function') cleanups.push(cleanup);
  } catch (err) {
    if (err?.name === 'AbortError' || seq !== navigation) return;
    console.error(err);
    mount(app, h('h1', {}, 'Something went wrong'), errorBox(err, () => render()));
  } finally {
    if (seq === navigation) app.removeAttribute('aria-busy');
  }
  if (focus && seq === navigation) {
    const heading = app.querySelector('h1');
    if (heading) {
      heading.setAttribute('tabindex', '-1');
      heading.focus({ preventScroll: false });
    }
    window.scrollTo(0, 0);
  }
}

function renderNav() {
  const nav = document.getElementById('nav');
  const account = document.getElementById('account');
  const here = location.pathname;
  const items = table.filter((r) => r.nav && (!r.auth || session.loggedIn) && (!r.role || session.hasRole(r.role)));
  mount(nav, items.map((r) => {
    const active = here === r.path || (r.path !== '/' && here.startsWith(`${r.path}/`));
    return h('li', {}, h('a', { href: r.path, dataset: { link: '' }, 'aria-current': active ? 'page' : null }, r.nav));
  }));
  if (session.loggedIn) {
    const user = session.user;
    mount(account,
      h('span', { class: 'site-account__name', title: user.email }, user.name || user.email),
      h('button', {
        type: 'button',
        class: 'btn btn--ghost btn--small',
        on: {
          click: async () => {
            await session.logout();
            navigate('/');
          },
        },
      }, 'Log out'));
  } else {
    const next = here.startsWith('/login') || here.startsWith('/signup') ? '' : `?next=${encodeURIComponent(here + location.search)}`;
    mount(account,
      h('a', { class: 'btn btn--ghost btn--small', href: `/login${next}`, dataset: { link: '' } }, 'Log in'),
      h('a', { class: 'btn btn--primary btn--small', href: `/signup${next}`, dataset: { link: '' } }, 'Sign up'));
  }
}

// Same-origin links navigate in place; new tabs, downloads and other sites behave as usual.
document.addEventListener('click', (event) => {
  if (event.defaultPrevented || event.button !== 0 || event.metaKey || event.ctrlKey || event.shiftKey || event.altKey) return;
  const link = event.target.closest('a[href]');
  if (!link || link.target || link.hasAttribute('download')) return;
  const url = new URL(link.href, location.href);
  if (url.origin !== location.origin || url.pathname.startsWith('/api/')) return;
  if (url.pathname === location.pathname && url.search === location.search && url.hash) return;
  event.preventDefault();
  navigate(url.pathname + url.search + url.hash);
});

window.addEventListener('popstate', () => render());

session.onChange((user) => {
  renderNav();
  if (user) push.connect();
  else push.disconnect();
});

render({ focus: false });
