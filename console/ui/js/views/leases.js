// Leases: each lease's remaining TTL (counted down here between
// refreshes), granted TTL and attached keys; revoke deletes its keys.

import {h, replace, fmtNum, errorBox, confirmAction} from '../dom.js';
import * as api from '../api.js';
import {fromB64, show, encodeKey} from '../bytes.js';

export function leasesView(root) {
  let leases = [], fetchedAt = 0, next = '', stopped = false;
  const rows = h('tbody', {id: 'lease-rows'});
  const info = h('div', {class: 'muted', id: 'lease-info'});
  const err = h('div');
  const more = h('button', {hidden: true, onclick: () => load(next, true)}, 'More leases');
  replace(root, h('h1', {}, 'Leases'), info, err,
    h('table', {class: 'grid'}, h('thead', {}, h('tr', {}, h('th', {}, 'Lease'), h('th', {class: 'num'}, 'Remaining'),
      h('th', {class: 'num'}, 'Granted TTL'), h('th', {}, 'Keys'), h('th'))), rows), more);

  async function load(from, append) {
    try {
      const r = await api.get('leases', {from});
      fetchedAt = Date.now();
      leases = append ? leases.concat(r.leases) : r.leases;
      next = r.next || '';
      more.hidden = !next;
      info.textContent = `${fmtNum(r.total)} lease${r.total === 1 ? '' : 's'}`;
      render();
    } catch (e) {
      replace(err, errorBox(e));
    }
  }
  function remaining(l) {
    return Math.max(0, l.ttl - Math.floor((Date.now() - fetchedAt) / 1000));
  }
  function render() {
    replace(rows, leases.length ? leases.map(l => h('tr', {class: 'lease', 'data-lease': l.id},
      h('td', {}, l.id),
      h('td', {class: 'num countdown', 'data-ttl': l.ttl}, l.gone ? 'expired' : remaining(l) + ' s'),
      h('td', {class: 'num'}, l.grantedTTL + ' s'),
      h('td', {}, l.keyCount ? [`${fmtNum(l.keyCount)}: `, l.keys.map(k => {
        const key = fromB64(k);
        return [h('a', {href: '#/key/' + encodeKey(key)}, show(key)), ' '];
      }), l.keyCount > l.keys.length ? '\u2026' : ''] : h('span', {class: 'muted'}, 'none')),
      h('td', {}, h('button', {class: 'danger', onclick: async () => {
        if (!confirmAction(`Revoke lease ${l.id}? Its ${l.keyCount} keys are deleted.`)) return;
        try {
          await api.post('lease/revoke', {id: l.id});
          load('', false);
        } catch (e) {
          replace(err, errorBox(e));
        }
      }}, 'Revoke')))) : h('tr', {}, h('td', {colspan: 5, class: 'muted'}, 'No leases.')));
  }
  // Count down every second; refresh from the server every 15.
  let ticks = 0;
  const timer = setInterval(() => {
    if (stopped) return;
    if (++ticks % 15 === 0) load('', false);
    else for (const td of rows.querySelectorAll('td.countdown')) {
      const l = leases.find(x => x.id === td.parentElement.dataset.lease);
      if (l && !l.gone) td.textContent = remaining(l) + ' s';
    }
  }, 1000);
  load('', false);
  return {stop: () => { stopped = true; clearInterval(timer); }};
}
