// Shared bits of the admin pages: the section tabs.
import { tabNav } from '../organizer/common.js';

export function adminTabs(here) {
  return tabNav('Admin', [
    ['/admin', 'Figures'],
    ['/admin/applications', 'Applications'],
    ['/admin/users', 'Users'],
    ['/admin/audit', 'Audit log'],
    ['/admin/dead-letters', 'Dead letters'],
  ], here);
}

/** The random tail of a UUID (v7 ids share their timestamp head). */
export function shortId(id) {
  const text = String(id ?? '');
  return text.length > 12 ? `…${text.slice(-8)}` : text;
}
