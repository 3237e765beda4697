// The console's JSON API (console/*.go). Mutating calls carry the
// session's CSRF token; the session cookie is sent by the browser and
// never visible here.

const base = new URL('api/', document.baseURI.replace(/#.*$/, '')).pathname;
let csrf = '';

export const session = {user: '', authEnabled: false, member: '', cluster: '', certNotice: ''};

export class ApiError extends Error {
  constructor(status, body) {
    super((body && body.error) || `HTTP ${status}`);
    this.status = status;
    this.body = body || {};
    this.login = !!(body && body.login);
  }
}

async function call(method, path, params, body) {
  const url = new URL(base + path, location.origin);
  for (const [k, v] of Object.entries(params || {})) {
    if (v !== undefined && v !== null && v !== '') url.searchParams.set(k, v);
  }
  const init = {method, credentials: 'same-origin', headers: {}};
  if (method !== 'GET') {
    init.headers['Content-Type'] = 'application/json';
    init.headers['X-Console-CSRF'] = csrf;
    init.body = JSON.stringify(body || {});
  }
  const resp = await fetch(url, init);
  let data = null;
  try { data = await resp.json(); } catch { /* empty body */ }
  if (!resp.ok) {
    const err = new ApiError(resp.status, data);
    if (err.login) window.dispatchEvent(new CustomEvent('login-required'));
    throw err;
  }
  return data;
}

export const get = (path, params) => call('GET', path, params);
export const post = (path, body) => call('POST', path, null, body);

// loadSession reads the session (and sets the CSRF token) from the server.
export async function loadSession() {
  const s = await get('session');
  csrf = s.csrf;
  Object.assign(session, s);
  return s;
}

export async function login(user, password) {
  const s = await post('login', {user, password});
  csrf = s.csrf;
  session.user = s.user;
  return s;
}

export async function logout() {
  const s = await post('logout', {});
  csrf = s.csrf;
  session.user = '';
}

// watchURL is the event-stream URL of a watch feed.
export function watchURL(params) {
  const url = new URL(base + 'watch', location.origin);
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== '') url.searchParams.set(k, v);
  return url.toString();
}
