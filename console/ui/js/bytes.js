// Keys and values are bytes: the API sends them base64-encoded, links
// carry them percent-encoded, and the UI shows them as UTF-8 text when
// they are that, escaped otherwise.

const utf8 = new TextDecoder('utf-8', {fatal: true});
const enc = new TextEncoder();

export function fromB64(b64) {
  if (!b64) return new Uint8Array(0);
  const bin = atob(b64);
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

export function toB64(bytes) {
  let bin = '';
  for (let i = 0; i < bytes.length; i += 0x8000) {
    bin += String.fromCharCode.apply(null, bytes.subarray(i, i + 0x8000));
  }
  return btoa(bin);
}

export function fromText(text) { return enc.encode(text); }

// asText is the bytes as a string if they are valid UTF-8, else null.
export function asText(bytes) {
  try { return utf8.decode(bytes); } catch { return null; }
}

// show writes bytes for display: UTF-8 as is (control characters
// escaped), anything else with \xNN escapes.
export function show(bytes) {
  const t = asText(bytes);
  if (t !== null) return t.replace(/[\u0000-\u001f\u007f]/g, c => '\\x' + c.charCodeAt(0).toString(16).padStart(2, '0'));
  let out = '';
  for (const b of bytes) {
    out += b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '\\x' + b.toString(16).padStart(2, '0');
  }
  return out;
}

// hexDump is the classic 16-bytes-a-line dump.
export function hexDump(bytes, max = 64 * 1024) {
  const lines = [];
  const n = Math.min(bytes.length, max);
  for (let off = 0; off < n; off += 16) {
    const row = bytes.subarray(off, Math.min(off + 16, n));
    const hex = Array.from(row, b => b.toString(16).padStart(2, '0')).join(' ');
    const asc = Array.from(row, b => (b >= 0x20 && b < 0x7f ? String.fromCharCode(b) : '.')).join('');
    lines.push(off.toString(16).padStart(8, '0') + '  ' + hex.padEnd(47) + '  ' + asc);
  }
  if (bytes.length > max) lines.push(`… ${bytes.length - max} more bytes`);
  return lines.join('\n');
}

// Links carry keys percent-encoded byte by byte, leaving '/' and the
// usual URL-safe characters readable: #/keys/registry/pods/.
const safe = /[A-Za-z0-9\-._~!$&'()*+,;=:@/]/;

export function encodeKey(bytes) {
  let out = '';
  for (const b of bytes) {
    const c = String.fromCharCode(b);
    out += b < 0x80 && safe.test(c) ? c : '%' + b.toString(16).toUpperCase().padStart(2, '0');
  }
  return out;
}

export function decodeKey(str) {
  const out = [];
  for (let i = 0; i < str.length; i++) {
    if (str[i] === '%' && /^[0-9a-fA-F]{2}$/.test(str.slice(i + 1, i + 3))) {
      out.push(parseInt(str.slice(i + 1, i + 3), 16));
      i += 2;
    } else {
      out.push(...enc.encode(str[i]));
    }
  }
  return new Uint8Array(out);
}

export function concat(a, b) {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

export function startsWith(bytes, prefix) {
  if (prefix.length > bytes.length) return false;
  for (let i = 0; i < prefix.length; i++) if (bytes[i] !== prefix[i]) return false;
  return true;
}
