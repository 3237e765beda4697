// The live watch feed of a prefix: the server opens a gRPC Watch as the
// logged-in user and relays it as Server-Sent Events. Pause closes the
// feed; resume reopens it from the revision after the last one shown, so
// nothing is missed (unless compacted meanwhile).

import {h, replace, fmtNum, errorBox} from '../dom.js';
import * as api from '../api.js';
import {toB64, fromB64, fromText, show, asText, encodeKey} from '../bytes.js';

const maxRows = 1000;

export function watchView(root, prefix) {
  let es = null, lastRev = 0, paused = false;
  const rows = h('tbody', {id: 'events'});
  const status = h('span', {id: 'watch-status', class: 'muted'});
  const err = h('div', {id: 'watch-error'});
  const prefixIn = h('input', {id: 'watch-prefix', value: show(prefix), spellcheck: 'false', placeholder: 'prefix ("" watches every key)'});
  const revIn = h('input', {id: 'watch-rev', type: 'number', min: 0, placeholder: 'from revision', title: 'empty: from now'});
  const pause = h('button', {id: 'watch-pause', onclick: () => (paused ? open(lastRev + 1) : close(true))}, 'Pause');

  function open(rev) {
    close(false);
    replace(err);
    paused = false;
    pause.textContent = 'Pause';
    const url = api.watchURL({prefix: toB64(prefix), rev: rev || ''});
    es = new EventSource(url);
    es.addEventListener('created', e => {
      const r = JSON.parse(e.data).revision;
      if (!lastRev) lastRev = rev ? rev - 1 : r;
      status.textContent = `Watching ${show(prefix) || 'every key'} from revision ${fmtNum(rev || r + 1)}.`;
    });
    es.addEventListener('message', e => {
      add(JSON.parse(e.data));
      if (e.lastEventId) lastRev = Number(e.lastEventId);
    });
    es.addEventListener('failed', e => {
      replace(err, errorBox(new Error(JSON.parse(e.data).error)));
      close(false);
    });
    es.addEventListener('error', async () => {
      if (!es || es.readyState !== EventSource.CLOSED) return; // reconnecting by itself
      close(false);
      // The server refused the feed (e.g. permission denied): ask again
      // with fetch, which can read the reason.
      try {
        const ctl = new AbortController();
        const resp = await fetch(url, {signal: ctl.signal});
        if (!resp.ok) {
          const body = await resp.json().catch(() => ({}));
          replace(err, errorBox(new Error(body.error || `HTTP ${resp.status}`)));
        }
        ctl.abort();
      } catch { /* aborted */ }
    });
  }
  function close(byUser) {
    if (es) es.close();
    es = null;
    if (byUser) {
      paused = true;
      pause.textContent = 'Resume';
      status.textContent = `Paused after revision ${fmtNum(lastRev)}; resuming replays what happened meanwhile.`;
    }
  }
  function add(ev) {
    const key = fromB64(ev.kv.key);
    const value = fromB64(ev.kv.value);
    const text = asText(value);
    rows.prepend(h('tr', {class: 'event ' + ev.type.toLowerCase()},
      h('td', {class: 'num'}, fmtNum(ev.kv.modRevision)),
      h('td', {}, ev.type),
      h('td', {}, h('a', {href: '#/key/' + encodeKey(key), class: 'event-key'}, show(key))),
      h('td', {class: 'preview'}, ev.type === 'PUT' ? (text ?? show(value)).slice(0, 200) + (ev.truncated ? '\u2026' : '') : '')));
    while (rows.children.length > maxRows) rows.lastChild.remove();
  }

  replace(root,
    h('h1', {}, 'Watch'),
    h('form', {class: 'row', onsubmit: e => {
      e.preventDefault();
      const p = fromText(prefixIn.value);
      if (encodeKey(p) !== encodeKey(prefix)) { location.hash = '#/watch/' + encodeKey(p); return; }
      rows.replaceChildren();
      lastRev = 0;
      open(Number(revIn.value) || 0);
    }}, prefixIn, revIn, h('button', {type: 'submit'}, 'Watch')),
    h('div', {class: 'row'}, pause, h('button', {onclick: () => rows.replaceChildren()}, 'Clear'), status),
    err,
    h('table', {class: 'grid'},
      h('thead', {}, h('tr', {}, h('th', {class: 'num'}, 'Revision'), h('th', {}, 'Type'), h('th', {}, 'Key'), h('th', {}, 'Value'))),
      rows));
  open(0);
  return {stop: () => close(false)};
}
