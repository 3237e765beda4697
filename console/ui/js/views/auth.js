// Auth: users, roles and permissions as the logged-in user may read
// them; for root, the forms that change them (each an etcd Auth call,
// checked and audited by the member).

import {h, replace, errorBox, confirmAction} from '../dom.js';
import * as api from '../api.js';
import {fromB64, toB64, fromText, show} from '../bytes.js';

export function authView(root) {
  const body = h('div');
  const result = h('div', {id: 'auth-result'});
  replace(root, h('h1', {}, 'Auth'), result, body);

  async function act(action, req, confirmText) {
    if (confirmText && !confirmAction(confirmText)) return;
    try {
      await api.post('auth/' + action, req);
      replace(result, h('div', {class: 'badge ok'}, action + ': done'));
      if (action === 'enable' || action === 'disable') await api.loadSession();
    } catch (e) {
      replace(result, errorBox(e));
    }
    load();
  }

  function form(title, fields, onsubmit) {
    const inputs = fields.map(([name, label, type]) => type === 'select'
      ? h('select', {name}, ['READ', 'WRITE', 'READWRITE'].map(t => h('option', {}, t)))
      : h('input', {name, placeholder: label, type: type || 'text', autocomplete: 'off'}));
    return h('form', {class: 'row', onsubmit: e => {
      e.preventDefault();
      onsubmit(Object.fromEntries(inputs.map(i => [i.name, i.value])));
    }}, h('strong', {}, title), inputs, h('button', {type: 'submit'}, 'Apply'));
  }

  function render(a) {
    const admin = !a.partial;
    replace(body,
      h('p', {}, 'Authentication is ', h('strong', {id: 'auth-enabled'}, a.enabled ? 'enabled' : 'disabled'), '. ',
        a.partial ? 'You see your own user and roles; only root sees every user and role and can change them.' : ''),
      h('h2', {}, 'Users'),
      h('table', {class: 'grid'}, h('thead', {}, h('tr', {}, h('th', {}, 'User'), h('th', {}, 'Roles'), h('th'))),
        h('tbody', {id: 'auth-users'}, a.users.map(u => h('tr', {},
          h('td', {}, u.name),
          h('td', {}, u.roles.map(r => [r, admin ? h('button', {class: 'link', title: 'revoke', onclick: () => act('revoke-role', {name: u.name, role: r}, `Revoke role ${r} from ${u.name}?`)}, ' \u00d7') : null, ' '])),
          h('td', {}, admin ? h('button', {class: 'danger', onclick: () => act('user-delete', {name: u.name}, `Delete user ${u.name}?`)}, 'Delete') : null))))),
      h('h2', {}, 'Roles'),
      h('table', {class: 'grid'}, h('thead', {}, h('tr', {}, h('th', {}, 'Role'), h('th', {}, 'Permissions'), h('th'))),
        h('tbody', {id: 'auth-roles'}, a.roles.map(r => h('tr', {},
          h('td', {}, r.name),
          h('td', {}, r.perms.length ? h('ul', {}, r.perms.map(p => h('li', {}, `${p.type} ${rangeText(p)} `,
            admin ? h('button', {class: 'link', onclick: () => act('revoke-permission', {role: r.name, key: p.key, rangeEnd: p.rangeEnd},
              `Revoke ${p.type} on ${rangeText(p)} from ${r.name}?`)}, 'revoke') : null))) : h('span', {class: 'muted'}, r.name === 'root' ? 'everything' : 'none')),
          h('td', {}, admin ? h('button', {class: 'danger', onclick: () => act('role-delete', {role: r.name}, `Delete role ${r.name}?`)}, 'Delete') : null))))),
      admin ? h('section', {class: 'panel'}, h('h2', {}, 'Change'),
        form('Add user', [['name', 'name'], ['password', 'password', 'password']], v => act('user-add', v)),
        form('Change password', [['name', 'user'], ['password', 'new password', 'password']], v => act('user-password', v)),
        form('Grant role', [['name', 'user'], ['role', 'role']], v => act('grant-role', v)),
        form('Add role', [['role', 'role']], v => act('role-add', v)),
        form('Grant permission', [['role', 'role'], ['type', '', 'select'], ['key', 'key or prefix'], ['prefix', 'prefix? (yes/no)']], v => {
          const key = fromText(v.key);
          const rangeEnd = /^y/i.test(v.prefix) ? toB64(prefixEnd(key)) : '';
          act('grant-permission', {role: v.role, type: v.type, key: toB64(key), rangeEnd});
        }),
        h('div', {class: 'row'}, a.enabled
          ? h('button', {class: 'danger', onclick: () => act('disable', {}, 'Disable authentication? Every client gets full access.')}, 'Disable auth')
          : h('button', {onclick: () => act('enable', {}, 'Enable authentication? A root user with the root role must exist.')}, 'Enable auth'))) : null);
  }

  async function load() {
    try {
      render(await api.get('auth'));
    } catch (e) {
      replace(body, errorBox(e));
    }
  }
  load();
  return null;
}

function rangeText(p) {
  const key = fromB64(p.key), end = p.rangeEnd ? fromB64(p.rangeEnd) : null;
  if (!end || !end.length) return show(key);
  if (end.length === 1 && end[0] === 0) return `[${show(key)}, \u221e)`;
  if (toB64(prefixEnd(key)) === p.rangeEnd) return show(key) + '* (prefix)';
  return `[${show(key)}, ${show(end)})`;
}

function prefixEnd(key) {
  const end = key.slice();
  for (let i = end.length - 1; i >= 0; i--) {
    if (end[i] < 0xff) { end[i]++; return end.slice(0, i + 1); }
  }
  return new Uint8Array([0]);
}
