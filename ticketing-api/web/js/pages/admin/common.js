// Shared bits of the admin pages: the section tabs.
import { tabNav } from '../organizer/common.js';

export function adminTabs(here) {
  return tabNav('Admin', [
    ['/admin', 'Figures'],
    ['/admin/applications', 'Applications'],
    ['/admin/users', 'Users'],
    ['/admin/audit', 'Audit log'],
  ], here);
}
