// The login page: etcd user and password, checked by the member's
// Authenticate. The token stays on the server.

import {h, replace, errorBox} from '../dom.js';
import * as api from '../api.js';

export function loginView(root, onLogin) {
  const err = h('div');
  const user = h('input', {id: 'login-user', name: 'user', autocomplete: 'username', required: true});
  const pass = h('input', {id: 'login-password', name: 'password', type: 'password', autocomplete: 'current-password'});
  const form = h('form', {class: 'login', id: 'login-form', onsubmit: async e => {
    e.preventDefault();
    replace(err);
    try {
      await api.login(user.value, pass.value);
      onLogin();
    } catch (e2) {
      replace(err, errorBox(e2));
      pass.value = '';
    }
  }},
  h('h1', {}, 'Log in'),
  h('p', {class: 'muted'}, 'This cluster has etcd authentication enabled. Log in as an etcd user; every action is checked and audited as that user\u2019s gRPC request.'),
  api.session.certNotice ? h('p', {class: 'notice', id: 'cert-notice'}, api.session.certNotice) : null,
  h('label', {}, 'User', user),
  h('label', {}, 'Password', pass),
  h('button', {type: 'submit', class: 'primary', id: 'login-submit'}, 'Log in'),
  err);
  replace(root, form);
  user.focus();
  return null;
}
