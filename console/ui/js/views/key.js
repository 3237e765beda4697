// One key: its value (text, JSON pretty-printed, or hex), metadata,
// history across revisions with a diff between any two versions, and
// edit/delete as compare-and-swaps on the mod revision shown.

import {h, replace, fmtNum, fmtBytes, errorBox, confirmAction} from '../dom.js';
import * as api from '../api.js';
import {toB64, fromB64, fromText, asText, show, hexDump, encodeKey} from '../bytes.js';
import {diffLines} from '../diff.js';

export function keyView(root, key) {
  const k64 = toB64(key);
  let kv = null;
  const body = h('div');
  replace(root, h('h1', {class: 'key-title'}, h('span', {class: 'muted'}, 'Key '), h('span', {id: 'key-name'}, show(key))),
    h('nav', {class: 'crumbs'}, h('a', {href: '#/keys/' + encodeKey(parentOf(key))}, '\u2190 ' + (show(parentOf(key)) || '(all keys)'))),
    body);

  async function load() {
    try {
      const r = await api.get('key', {key: k64});
      kv = r.kv;
      render(r.revision);
    } catch (e) {
      replace(body, errorBox(e));
    }
  }

  function render(revision) {
    if (!kv) {
      replace(body, h('p', {class: 'muted', id: 'no-key'}, `No such key at revision ${fmtNum(revision)}.`),
        editor(null, revision));
      return;
    }
    const value = fromB64(kv.value);
    replace(body,
      h('dl', {class: 'meta', id: 'key-meta'},
        h('dt', {}, 'Version'), h('dd', {id: 'meta-version'}, kv.version),
        h('dt', {}, 'Mod revision'), h('dd', {id: 'meta-mod'}, fmtNum(kv.modRevision)),
        h('dt', {}, 'Create revision'), h('dd', {}, fmtNum(kv.createRevision)),
        h('dt', {}, 'Lease'), h('dd', {}, kv.lease ? h('a', {href: '#/leases'}, kv.lease) : 'none'),
        h('dt', {}, 'Size'), h('dd', {}, fmtBytes(value.length)),
        h('dt', {}, 'Read at'), h('dd', {}, 'revision ' + fmtNum(revision))),
      h('section', {}, h('h2', {}, 'Value'), valueViewer(value)),
      editor(kv, revision),
      historyPanel(key, kv));
  }

  // editor writes a new value, or deletes, only if the key is still at
  // the mod revision shown (0: must not exist); a conflict shows what is
  // there now and writes nothing.
  function editor(shown, revision) {
    const text = shown ? asText(fromB64(shown.value)) : '';
    const err = h('div', {id: 'edit-result'});
    const area = h('textarea', {id: 'value-editor', rows: 8, spellcheck: 'false', value: text ?? ''});
    const expected = shown ? shown.modRevision : 0;
    async function write(path, value, modRevision) {
      replace(err);
      try {
        await api.post(path, {key: k64, value, modRevision});
        load();
      } catch (e) {
        if (e.status === 409 && e.body.conflict) replace(err, conflictBox(e.body.current, area.value));
        else replace(err, errorBox(e));
      }
    }
    function conflictBox(current, mine) {
      const theirs = current ? display(fromB64(current.value)) : '';
      return h('div', {class: 'conflict', id: 'conflict', role: 'alert'},
        h('strong', {}, 'Not saved: someone changed this key since you loaded it. '),
        current ? `It is now at version ${current.version}, mod revision ${fmtNum(current.modRevision)}.` : 'It has been deleted.',
        h('h3', {}, 'Their value \u2192 yours'), diffView(theirs, display(fromText(mine))),
        h('div', {class: 'row'},
          h('button', {id: 'conflict-reload', onclick: () => load()}, 'Discard mine and reload'),
          h('button', {class: 'danger', id: 'conflict-overwrite', onclick: () => {
            if (confirmAction('Replace their version with yours?')) write('put', toB64(fromText(mine)), current ? current.modRevision : 0);
          }}, 'Save mine over theirs')));
    }
    if (shown && text === null) {
      return h('section', {}, h('h2', {}, 'Edit'), h('p', {class: 'muted'}, 'The value is binary: it can be deleted here, and edited with etcdctl.'),
        h('button', {class: 'danger', onclick: () => confirmAction('Delete this key?') && write('delete', '', expected)}, 'Delete'), err);
    }
    return h('section', {}, h('h2', {}, shown ? 'Edit' : 'Create'),
      h('p', {class: 'muted'}, shown ? `Saved only if the key is still at mod revision ${fmtNum(expected)}.` : 'Created only if the key still does not exist.'),
      area,
      h('div', {class: 'row'},
        h('button', {class: 'primary', id: 'save', onclick: () => write('put', toB64(fromText(area.value)), expected)}, shown ? 'Save' : 'Create'),
        shown ? h('button', {class: 'danger', id: 'delete', onclick: () => confirmAction('Delete this key?') && write('delete', '', expected)}, 'Delete') : null),
      err);
  }

  load();
  return null;
}

function parentOf(key) {
  for (let i = key.length - 2; i >= 0; i--) if (key[i] === 0x2f) return key.subarray(0, i + 1);
  return new Uint8Array(0);
}

// valueViewer shows bytes as JSON (pretty), text or hex, picking the
// first that fits; tabs switch.
function valueViewer(value) {
  const text = asText(value);
  let json = null;
  if (text !== null) try { json = JSON.stringify(JSON.parse(text), null, 2); } catch { /* not JSON */ }
  const modes = [];
  if (json !== null) modes.push(['JSON', json]);
  if (text !== null) modes.push(['Text', text]);
  modes.push(['Hex', hexDump(value)]);
  const pre = h('pre', {class: 'value', id: 'value-view'});
  const tabs = h('div', {class: 'tabs'});
  function pick(i) {
    pre.textContent = modes[i][1];
    tabs.querySelectorAll('button').forEach((b, j) => b.classList.toggle('active', i === j));
  }
  modes.forEach(([name], i) => tabs.append(h('button', {type: 'button', onclick: () => pick(i)}, name)));
  pick(0);
  return h('div', {}, tabs, pre);
}

// display is a value as the diff compares it: JSON pretty-printed (so a
// change shows on its own line), text as is, binary escaped.
function display(bytes) {
  const t = asText(bytes);
  if (t === null) return show(bytes);
  try { return JSON.stringify(JSON.parse(t), null, 2); } catch { return t; }
}

function diffView(a, b) {
  const pre = h('pre', {class: 'diff'});
  for (const d of diffLines(a, b)) {
    pre.append(h('span', {class: d.op === '+' ? 'add' : d.op === '-' ? 'del' : 'same'}, d.op + ' ' + d.line + '\n'));
  }
  return pre;
}

// historyPanel lists the key's versions, newest first, a page at a time
// (the server walks back with Ranges at past revisions), and diffs any
// two of them.
function historyPanel(key, kv) {
  const versions = [];
  let next = 0, picked = false;
  const list = h('tbody', {id: 'history'});
  const note = h('div', {class: 'muted'});
  const more = h('button', {hidden: true, id: 'history-more', onclick: () => load()}, 'Older versions');
  const from = h('select', {id: 'diff-from', onchange: () => showDiff()});
  const to = h('select', {id: 'diff-to', onchange: () => showDiff()});
  const diff = h('div', {id: 'diff'});

  const text = v => display(fromB64(v.value));
  function showDiff() {
    const a = versions[from.selectedIndex], b = versions[to.selectedIndex];
    if (a && b) replace(diff, diffView(text(a), text(b)));
  }
  async function load() {
    try {
      const r = await api.get('history', {key: toB64(key), before: next || '', limit: 10});
      for (const v of r.versions) {
        const i = versions.length;
        versions.push(v);
        list.append(h('tr', {class: 'version'},
          h('td', {class: 'num'}, 'v' + v.version), h('td', {class: 'num'}, fmtNum(v.modRevision)),
          h('td', {class: 'num'}, fmtBytes(v.size)), h('td', {class: 'preview'}, text(v).slice(0, 120)),
          h('td', {}, h('button', {class: 'link', onclick: () => { from.selectedIndex = Math.min(i + 1, versions.length - 1); to.selectedIndex = i; showDiff(); }}, 'diff with previous'))));
        const label = `v${v.version} (rev ${v.modRevision})`;
        from.append(h('option', {}, label));
        to.append(h('option', {}, label));
      }
      next = r.next || 0;
      more.hidden = !next;
      if (r.compacted) note.textContent = `Older versions were compacted away (at or before revision ${fmtNum(r.compacted)}).`;
      else if (!next) note.textContent = 'This is every version since the key was created.';
      if (!picked) {
        // Newest against the one before it.
        from.selectedIndex = Math.min(1, versions.length - 1);
        to.selectedIndex = 0;
        picked = true;
      }
      showDiff();
    } catch (e) {
      replace(note, errorBox(e));
    }
  }
  load();
  return h('section', {}, h('h2', {}, 'History'),
    h('table', {class: 'grid'}, h('thead', {}, h('tr', {}, h('th', {}, 'Version'), h('th', {class: 'num'}, 'Mod rev'),
      h('th', {class: 'num'}, 'Size'), h('th', {}, 'Value'), h('th'))), list),
    more, note,
    h('h3', {}, 'Diff'), h('div', {class: 'row'}, 'from ', from, ' to ', to), diff);
}
