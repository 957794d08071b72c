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
  // Organizers (a fan sees the application there) and admins.
  { path: '/organizer', load: () => import('./pages/organizer/home.js'), auth: true, nav: 'Organize', title: 'Organize' },
  { path: '/organizer/events/new', load: () => import('./pages/organizer/event-new.js'), role: 'organizer', title: 'New event' },
  { path: '/organizer/events/:id', load: () => import('./pages/organizer/dashboard.js'), role: 'organizer', title: 'Sales dashboard' },
  { path: '/organizer/venues', load: () => import('./pages/organizer/venues.js'), role: 'organizer', title: 'Venues' },
  { path: '/organizer/venues/new', load: () => import('./pages/organizer/venue-new.js'), role: 'organizer', title: 'New venue' },
  { path: '/organizer/venues/:id', load: () => import('./pages/organizer/venues.js'), role: 'organizer', title: 'Venue' },
  { path: '/admin', load: () => import('./pages/admin/stats.js'), role: 'admin', nav: 'Admin', title: 'Platform figures' },
  { path: '/admin/applications', load: () => import('./pages/admin/applications.js'), role: 'admin', title: 'Organizer applications' },
  { path: '/admin/users', load: () => import('./pages/admin/users.js'), role: 'admin', title: 'Users' },
  { path: '/admin/audit', load: () => import('./pages/admin/audit.js'), role: 'admin', title: 'Audit log' },
  { path: '/admin/dead-letters', load: () => import('./pages/admin/dead-letters.js'), role: 'admin', title: 'Dead letters' },
];

// Shown when nothing matches.
export const notFound = { path: '*', load: () => import('./pages/notfound.js'), title: 'Not found' };
