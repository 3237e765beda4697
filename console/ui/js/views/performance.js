// Performance: sparklines of this member's requests/s, p99 request
// latency, p99 WAL fsync and DB size (sampled from its metrics registry),
// and compaction / defragmentation with their progress.

import {h, s, replace, fmtNum, fmtBytes, errorBox, confirmAction} from '../dom.js';
import * as api from '../api.js';

const pollEvery = 2000;

const series = [
  ['requestsPerSec', 'gRPC requests / s', v => v.toFixed(1)],
  ['requestP99', 'p99 request latency', v => fmtSeconds(v)],
  ['fsyncP99', 'p99 WAL fsync', v => fmtSeconds(v)],
  ['dbSize', 'DB size', v => fmtBytes(v)],
];

export function performanceView(root) {
  let timer = null, stopped = false, last = null, job = null;
  const cards = h('div', {class: 'cards', id: 'sparklines'});
  const progress = h('div', {id: 'maintenance-progress'});
  const rev = h('input', {id: 'compact-rev', type: 'number', min: 1, placeholder: 'revision'});
  const physical = h('input', {type: 'checkbox', id: 'compact-physical'});
  const member = h('select', {id: 'defrag-member'});

  replace(root, h('h1', {}, 'Performance'),
    h('p', {class: 'muted'}, 'This member\u2019s metrics, sampled every few seconds while the page is open.'),
    cards,
    h('h2', {}, 'Maintenance'),
    h('form', {class: 'row', onsubmit: e => { e.preventDefault(); compact(); }},
      h('strong', {}, 'Compact history up to revision'), rev,
      h('label', {}, physical, ' wait until removed from storage'), h('button', {type: 'submit', id: 'compact'}, 'Compact')),
    h('form', {class: 'row', onsubmit: e => { e.preventDefault(); defrag(); }},
      h('strong', {}, 'Defragment'), member, h('button', {type: 'submit', id: 'defrag'}, 'Defragment')),
    progress);

  api.get('members').then(c => replace(member, c.members.map(m => h('option', {value: m.id}, m.name || m.id)))).catch(() => {});

  async function run(label, path, body, watchKey) {
    const start = Date.now(), before = last ? last.now : {};
    job = {label, start, before, watchKey};
    renderProgress();
    try {
      await api.post(path, body);
      job.done = 'done';
    } catch (e) {
      job.done = e;
    }
    job.end = Date.now();
    renderProgress();
  }
  function compact() {
    const r = Number(rev.value);
    if (!r) return;
    if (!confirmAction(`Compact every version older than revision ${fmtNum(r)}? Older versions and their history are gone for good.`)) return;
    run(`Compaction to revision ${fmtNum(r)}`, 'compact', {revision: r, physical: physical.checked}, 'etcd_debugging_mvcc_db_compaction_keys_total');
  }
  function defrag() {
    if (!member.value) return;
    run(`Defragmentation of ${member.selectedOptions[0].textContent}`, 'defrag', {id: member.value}, 'etcd_mvcc_db_total_size_in_bytes');
  }
  function renderProgress() {
    if (!job) return;
    const now = last ? last.now : {};
    const secs = (((job.end || Date.now()) - job.start) / 1000).toFixed(0);
    let detail = '';
    if (job.watchKey === 'etcd_debugging_mvcc_db_compaction_keys_total') {
      detail = `${fmtNum((now[job.watchKey] || 0) - (job.before[job.watchKey] || 0))} versions removed so far; compacted revision ${fmtNum(now.etcd_debugging_mvcc_compact_revision || 0)}`;
    } else {
      detail = `DB size ${fmtBytes(job.before[job.watchKey] || 0)} \u2192 ${fmtBytes(now[job.watchKey] || 0)}${now.etcd_disk_defrag_inflight ? ' (in progress)' : ''}`;
    }
    const running = !job.done;
    replace(progress, h('div', {class: 'panel', id: 'job'},
      h('strong', {}, job.label), ' \u2014 ',
      running ? `running for ${secs} s` : job.done === 'done' ? h('span', {class: 'badge ok', id: 'job-done'}, `finished in ${secs} s`) : errorBox(job.done),
      h('div', {class: 'progress'}, h('div', {class: running ? 'indeterminate' : 'full'})),
      h('div', {class: 'muted'}, detail)));
  }

  function render(v) {
    last = v;
    if (!rev.value && v.now.etcd_debugging_mvcc_current_revision) rev.placeholder = `current: ${v.now.etcd_debugging_mvcc_current_revision}`;
    replace(cards, series.map(([key, title, fmt]) => {
      const vals = v.points.map(p => p[key]);
      const cur = vals.length ? vals[vals.length - 1] : (key === 'dbSize' ? v.now.etcd_mvcc_db_total_size_in_bytes || 0 : 0);
      return h('div', {class: 'card', 'data-series': key}, h('div', {class: 'muted'}, title), h('div', {class: 'big'}, fmt(cur)), spark(vals),
        h('div', {class: 'muted'}, vals.length ? `max ${fmt(Math.max(...vals))} over ${vals.length} samples` : 'collecting\u2026'));
    }));
    renderProgress();
  }

  async function poll() {
    clearTimeout(timer);
    try {
      const v = await api.get('metrics');
      if (!stopped) render(v);
    } catch (e) {
      if (!stopped) replace(cards, errorBox(e));
    }
    if (!stopped) timer = setTimeout(poll, pollEvery);
  }
  poll();
  return {stop: () => { stopped = true; clearTimeout(timer); }};
}

function spark(vals) {
  const svg = s('svg', {class: 'spark', viewBox: '0 0 100 30', preserveAspectRatio: 'none'});
  if (vals.length < 2) return svg;
  const max = Math.max(...vals) || 1;
  const pts = vals.map((v, i) => `${(i / (vals.length - 1) * 100).toFixed(2)},${(29 - v / max * 28).toFixed(2)}`).join(' ');
  svg.append(s('polyline', {points: pts, 'vector-effect': 'non-scaling-stroke'}));
  return svg;
}

function fmtSeconds(v) {
  if (v >= 1) return v.toFixed(2) + ' s';
  return (v * 1000).toFixed(v < 0.01 ? 2 : 1) + ' ms';
}
