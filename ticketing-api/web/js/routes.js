// The route table: one plain list, first match wins. Each page module exports render(ctx).
//
//   path   '/events/:id' (":name" segments become ctx.params.name)
//   load   () => import('./pages/...')
//   auth   true: log in first (redirects to /login?next=...)
//   role   'organizer' | 'admin': only that role (an admin passes every role check)
//   nav    label: shown in the header menu (when auth/role allow)
//   title  the document title (a page may set a better one)
//
// The organizer/admin pages add their lines here.
export const routes = [
  { path: '/', load: () => import('./pages/fan/events.js'), title: 'Events' },
  { path: '/events', load: () => import('./pages/fan/events.js'), nav: 'Events', title: 'Events' },
  { path: '/events/:id', load: () => import('./pages/fan/event.js'), title: 'Event' },
  { path: '/events/:id/queue', load: () => import('./pages/fan/queue.js'), auth: true, title: 'Waiting room' },
  { path: '/bookings/:id', load: () => import('./pages/fan/booking.js'), auth: true, title: 'Your booking' },
  { path: '/me/tickets', load: () => import('./pages/fan/tickets.js'), auth: true, nav: 'My tickets', title: 'My tickets' },
  { path: '/login', load: () => import('./pages/fan/login.js'), title: 'Log in' },
  { path: '/signup', load: () => import('./pages/fan/signup.js'), title: 'Sign up' },
];

// Shown when nothing matches.
export const notFound = { path: '*', load: () => import('./pages/notfound.js'), title: 'Not found' };
