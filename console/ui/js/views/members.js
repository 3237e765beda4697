// The cluster: every member's status as that member reports it (raft
// term and indexes, DB size, version, errors), health, active alarms,
// the leader over time (polled), and the membership actions: move
// leader, promote a learner, remove a member, defragment, disarm.

import {h, s, replace, fmtNum, fmtBytes, errorBox, confirmAction} from '../dom.js';
import * as api from '../api.js';

const pollEvery = 3000;
// leaderLog is the leader seen at each poll that saw a change, kept while
// the page is open (across views).
const leaderLog = [];

export function membersView(root) {
  let timer = null, stopped = false, names = {};
  const summary = h('div', {class: 'cards', id: 'cluster-summary'});
  const alarms = h('div', {id: 'alarms'});
  const table = h('tbody', {id: 'member-rows'});
  const result = h('div', {id: 'member-result'});
  const timeline = h('div', {id: 'leader-timeline'});

  replace(root, h('h1', {}, 'Members'), summary, result, alarms,
    h('table', {class: 'grid'}, h('thead', {}, h('tr', {},
      ['Member', 'Health', 'Raft term', 'Raft index', 'Applied', 'DB size', 'In use', 'Version', 'URLs', 'Actions'].map(t => h('th', {}, t)))), table),
    h('h2', {}, 'Leader over time'), timeline);

  async function act(label, path, body, confirmText) {
    if (confirmText && !confirmAction(confirmText)) return;
    replace(result, h('div', {class: 'muted', id: 'member-working'}, label + '\u2026'));
    try {
      await api.post(path, body);
      replace(result, h('div', {class: 'badge ok', id: 'member-done'}, label + ': done'));
    } catch (e) {
      replace(result, errorBox(e));
    }
    poll();
  }

  function render(c) {
    names = Object.fromEntries(c.members.map(m => [m.id, m.name || m.id]));
    const last = leaderLog[leaderLog.length - 1];
    if (!last || last.leader !== c.leader) leaderLog.push({at: new Date(), leader: c.leader});
    const healthy = c.members.filter(m => m.status && !(m.status.errors || []).length).length;
    replace(summary,
      card('Cluster', c.cluster),
      card('Leader', h('span', {id: 'leader-name'}, c.leader === '0' ? 'none' : names[c.leader] || c.leader)),
      card('Healthy members', `${healthy} / ${c.members.length}`),
      card('Leader changes seen', fmtNum(c.leaderChanges)));
    replace(alarms, c.alarms.length ? h('div', {class: 'conflict'}, h('strong', {}, 'Active alarms'),
      h('ul', {}, c.alarms.map(a => h('li', {}, `${a.alarm} on ${names[a.member] || a.member} `,
        h('button', {class: 'danger', onclick: () => act(`Disarm ${a.alarm}`, 'alarms/disarm', {member: a.member, alarm: a.alarm},
          `Disarm ${a.alarm} on ${names[a.member] || a.member}? Do it only once its cause is fixed.`)}, 'Disarm'))))) : null);
    replace(table, c.members.map(m => memberRow(m, c.leader)));
    renderTimeline();
  }

  function memberRow(m, leader) {
    const st = m.status;
    const isLeader = m.id === leader;
    let health = h('span', {class: 'badge bad'}, 'unreachable');
    if (st) health = (st.errors || []).length ? h('span', {class: 'badge warn'}, st.errors.join('; ')) : h('span', {class: 'badge ok'}, 'healthy');
    const actions = [];
    if (!m.isLearner && !isLeader) {
      actions.push(h('button', {class: 'move-leader', 'data-member': m.name, onclick: () => act(`Move leader to ${m.name}`, 'members/move-leader', {id: m.id},
        `Make ${m.name} the leader? Writes pause for a moment during the handover.`)}, 'Make leader'));
    }
    if (m.isLearner) {
      actions.push(h('button', {onclick: () => act(`Promote ${m.name}`, 'members/promote', {id: m.id}, `Promote learner ${m.name} to a voting member?`)}, 'Promote'));
    }
    actions.push(h('button', {onclick: () => act(`Defragment ${m.name}`, 'defrag', {id: m.id}, `Defragment ${m.name}'s storage?`)}, 'Defragment'));
    actions.push(h('button', {class: 'danger', onclick: () => {
      const typed = window.prompt(`Remove ${m.name || m.id} from the cluster? It stops serving and must not be restarted with its data. Type its name to confirm.`);
      if (typed !== null && typed === (m.name || m.id)) act(`Remove ${m.name}`, 'members/remove', {id: m.id});
    }}, 'Remove'));
    return h('tr', {class: 'member', 'data-member': m.name},
      h('td', {}, h('strong', {}, m.name || '(unstarted)'), m.self ? ' (this member)' : '', h('br'),
        h('span', {class: 'muted'}, m.id), isLeader ? h('span', {class: 'badge ok'}, 'leader') : null,
        m.isLearner ? h('span', {class: 'badge warn'}, 'learner') : null),
      h('td', {}, health, m.error ? h('div', {class: 'muted'}, m.error) : null),
      h('td', {class: 'num'}, st ? fmtNum(st.raftTerm) : ''),
      h('td', {class: 'num'}, st ? fmtNum(st.raftIndex) : ''),
      h('td', {class: 'num'}, st ? fmtNum(st.raftAppliedIndex) : ''),
      h('td', {class: 'num'}, st ? fmtBytes(st.dbSize) : ''),
      h('td', {class: 'num'}, st ? fmtBytes(st.dbSizeInUse) : ''),
      h('td', {}, st ? st.version : ''),
      h('td', {}, h('div', {}, 'client: ' + (m.clientURLs || []).join(', ')), h('div', {class: 'muted'}, 'peer: ' + (m.peerURLs || []).join(', '))),
      h('td', {}, h('div', {class: 'row'}, actions)));
  }

  function renderTimeline() {
    if (!leaderLog.length) return;
    const t0 = leaderLog[0].at.getTime(), t1 = Date.now(), span = Math.max(t1 - t0, 1);
    const ids = [...new Set(leaderLog.map(e => e.leader))];
    const svg = s('svg', {class: 'timeline', viewBox: '0 0 1000 20', preserveAspectRatio: 'none'});
    leaderLog.forEach((e, i) => {
      const x0 = (e.at.getTime() - t0) / span * 1000;
      const x1 = ((i + 1 < leaderLog.length ? leaderLog[i + 1].at.getTime() : t1) - t0) / span * 1000;
      svg.append(s('rect', {x: x0, y: 0, width: Math.max(x1 - x0, 1), height: 20, fill: color(ids.indexOf(e.leader))},
        s('title', {}, names[e.leader] || e.leader)));
    });
    replace(timeline, svg, h('ul', {id: 'leader-log'}, leaderLog.slice(-20).reverse().map(e =>
      h('li', {}, `${e.at.toLocaleTimeString()}: ${e.leader === '0' ? 'no leader' : (names[e.leader] || e.leader) + ' leads'}`))),
    h('p', {class: 'muted'}, 'Seen by polling this page every few seconds since it was opened.'));
  }

  async function poll() {
    clearTimeout(timer);
    try {
      const c = await api.get('members');
      if (!stopped) render(c);
    } catch (e) {
      if (!stopped) replace(summary, errorBox(e));
    }
    if (!stopped) timer = setTimeout(poll, pollEvery);
  }
  poll();
  return {stop: () => { stopped = true; clearTimeout(timer); }};
}

function card(title, value) {
  return h('div', {class: 'card'}, h('div', {class: 'muted'}, title), h('div', {class: 'big'}, value));
}

const palette = ['#2f6fde', '#1f8a4c', '#b7791f', '#8e44ad', '#c4352b', '#16a085'];
function color(i) { return palette[i % palette.length]; }
