// The console's shell: a hash router (links can be shared:
// #/keys/<prefix>, #/key/<key>, #/watch/<prefix>, #/leases, #/members,
// #/auth, #/performance), the login gate and the user box.

import {h, replace, errorBox} from './dom.js';
import * as api from './api.js';
import {decodeKey} from './bytes.js';
import {keysView} from './views/keys.js';
import {keyView} from './views/key.js';
import {watchView} from './views/watch.js';
import {loginView} from './views/login.js';
import {membersView} from './views/members.js';
import {leasesView} from './views/leases.js';
import {authView} from './views/auth.js';
import {performanceView} from './views/performance.js';

const main = document.getElementById('main');
const who = document.getElementById('who');
let current = null; // the running view: {stop()}
let afterLogin = '#/keys/';

const routes = [
  [/^#\/keys\/(.*)$/, 'keys', m => keysView(main, decodeKey(m[1]))],
  [/^#\/key\/(.+)$/, 'keys', m => keyView(main, decodeKey(m[1]))],
  [/^#\/watch\/(.*)$/, 'watch', m => watchView(main, decodeKey(m[1]))],
  [/^#\/members$/, 'members', () => membersView(main)],
  [/^#\/leases$/, 'leases', () => leasesView(main)],
  [/^#\/auth$/, 'auth', () => authView(main)],
  [/^#\/performance$/, 'performance', () => performanceView(main)],
  [/^#\/login$/, '', () => loginView(main, onLogin)],
];

function route() {
  if (current && current.stop) current.stop();
  current = null;
  const hash = location.hash || '#/keys/';
  if (api.session.authEnabled && !api.session.user && hash !== '#/login') {
    afterLogin = hash;
    location.hash = '#/login';
    return;
  }
  for (const [re, nav, view] of routes) {
    const m = hash.match(re);
    if (!m) continue;
    for (const a of document.querySelectorAll('#nav a')) a.classList.toggle('active', a.dataset.view === nav);
    try {
      current = view(m) || null;
    } catch (e) {
      replace(main, errorBox(e));
    }
    return;
  }
  location.hash = '#/keys/';
}

function onLogin() {
  renderWho();
  location.hash = afterLogin === '#/login' ? '#/keys/' : afterLogin;
}

function renderWho() {
  const s = api.session;
  if (!s.authEnabled) {
    replace(who, h('span', {class: 'badge', title: 'etcd auth is disabled: every request is anonymous'}, 'auth off'));
    return;
  }
  if (!s.user) {
    replace(who, h('span', {class: 'badge warn'}, 'not logged in'));
    return;
  }
  replace(who,
    h('span', {class: 'user', id: 'user-name'}, s.user),
    h('button', {class: 'link', id: 'logout', onclick: async () => {
      await api.logout();
      renderWho();
      afterLogin = '#/keys/';
      location.hash = '#/login';
    }}, 'Log out'));
}

window.addEventListener('login-required', () => {
  api.session.user = '';
  renderWho();
  if (location.hash !== '#/login') {
    afterLogin = location.hash;
    location.hash = '#/login';
  }
});
window.addEventListener('hashchange', route);

async function start() {
  try {
    await api.loadSession();
  } catch (e) {
    replace(main, errorBox(e));
    return;
  }
  renderWho();
  route();
}

start();
