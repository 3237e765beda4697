// The key browser: the tree under a prefix, a page at a time (the server
// reads keys-only pages and skips over directories: it works the same on
// a prefix of ten keys or of millions).

import {h, replace, fmtNum, errorBox} from '../dom.js';
import * as api from '../api.js';
import {toB64, fromB64, fromText, show, encodeKey} from '../bytes.js';

const slash = 0x2f;

export function keysView(root, prefix) {
  let next = null, rev = 0, loading = false;
  const rows = h('tbody', {id: 'key-rows'});
  const info = h('div', {class: 'muted', id: 'keys-info'});
  const err = h('div');
  const more = h('button', {id: 'keys-more', hidden: true, onclick: () => load()}, 'Load more');
  const goto = h('input', {id: 'prefix-input', value: show(prefix), placeholder: 'prefix, e.g. /registry/', spellcheck: 'false'});

  replace(root,
    h('h1', {}, 'Keys'),
    crumbs(prefix),
    h('form', {class: 'row', onsubmit: e => {
      e.preventDefault();
      location.hash = '#/keys/' + encodeKey(fromText(goto.value));
    }}, goto, h('button', {type: 'submit'}, 'Open prefix'),
    h('button', {type: 'button', onclick: () => newKey(root, prefix)}, 'New key\u2026'),
    h('a', {class: 'button', href: '#/watch/' + encodeKey(prefix)}, 'Watch this prefix')),
    info, err,
    h('table', {class: 'grid'},
      h('thead', {}, h('tr', {}, h('th', {}, 'Name'), h('th', {class: 'num'}, 'Keys / version'),
        h('th', {class: 'num'}, 'Mod rev'), h('th', {class: 'num'}, 'Create rev'), h('th', {}, 'Lease'))),
      rows),
    more);

  async function load() {
    if (loading) return;
    loading = true;
    try {
      const page = await api.get('keys', {prefix: toB64(prefix), from: next ? toB64(next) : '', rev, limit: 100});
      if (!next) {
        rev = page.revision;
        info.textContent = `${fmtNum(page.total)} keys under this prefix, at revision ${fmtNum(rev)}`;
      }
      for (const e of page.entries) rows.append(row(prefix, e));
      next = page.next ? fromB64(page.next) : null;
      more.hidden = !next;
      if (!page.entries.length && !rows.children.length) rows.append(h('tr', {}, h('td', {colspan: 5, class: 'muted'}, 'No keys.')));
    } catch (e) {
      replace(err, errorBox(e));
    } finally {
      loading = false;
    }
  }
  load();
  return null;
}

function row(prefix, e) {
  const key = fromB64(e.key);
  const name = show(key.subarray(prefix.length));
  if (e.dir) {
    return h('tr', {class: 'entry dir'},
      h('td', {}, h('a', {href: '#/keys/' + encodeKey(key), 'data-key': show(key)}, name)),
      h('td', {class: 'num'}, fmtNum(e.count)), h('td'), h('td'), h('td'));
  }
  const kv = e.kv;
  return h('tr', {class: 'entry'},
    h('td', {}, h('a', {href: '#/key/' + encodeKey(key), 'data-key': show(key)}, name)),
    h('td', {class: 'num'}, 'v' + kv.version),
    h('td', {class: 'num'}, fmtNum(kv.modRevision)),
    h('td', {class: 'num'}, fmtNum(kv.createRevision)),
    h('td', {}, kv.lease ? h('a', {href: '#/leases'}, kv.lease) : ''));
}

// crumbs is the prefix as links to each of its directories.
function crumbs(prefix) {
  const out = [h('a', {href: '#/keys/'}, '(all keys)')];
  let start = 0;
  for (let i = 0; i < prefix.length; i++) {
    if (prefix[i] !== slash) continue;
    const upto = prefix.subarray(0, i + 1);
    out.push(' ', h('a', {href: '#/keys/' + encodeKey(upto)}, show(prefix.subarray(start, i + 1))));
    start = i + 1;
  }
  if (start < prefix.length) out.push(' ', h('span', {}, show(prefix.subarray(start)) + '\u2026'));
  return h('nav', {class: 'crumbs', id: 'crumbs'}, out);
}

// newKey asks for a key under prefix and its value, and creates it only
// if it does not exist (compare mod_revision = 0).
function newKey(root, prefix) {
  const err = h('div');
  const name = h('input', {id: 'new-key', value: show(prefix), spellcheck: 'false'});
  const value = h('textarea', {id: 'new-value', rows: 6, spellcheck: 'false'});
  const dialog = h('form', {class: 'panel', onsubmit: async e => {
    e.preventDefault();
    const key = fromText(name.value);
    try {
      await api.post('put', {key: toB64(key), value: toB64(fromText(value.value)), modRevision: 0});
      location.hash = '#/key/' + encodeKey(key);
    } catch (e2) {
      replace(err, errorBox(e2.body && e2.body.conflict ? new Error('That key already exists: open it to edit it.') : e2));
    }
  }}, h('h2', {}, 'New key'), h('label', {}, 'Key', name), h('label', {}, 'Value', value),
  h('div', {class: 'row'}, h('button', {type: 'submit', class: 'primary'}, 'Create'),
    h('button', {type: 'button', onclick: () => dialog.remove()}, 'Cancel')), err);
  root.prepend(dialog);
  name.focus();
}
