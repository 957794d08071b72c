import { h } from '../ui.js';

export function render({ root }) {
  root.append(
    h('h1', {}, 'Page not found'),
    h('p', {}, 'There is nothing at this address.'),
    h('p', {}, h('a', { href: '/', dataset: { link: '' } }, 'See the events on sale')),
  );
}
