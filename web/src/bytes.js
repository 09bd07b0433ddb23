// Small byte helpers shared by the browser modules. No dependencies, no DOM.

const HEX = '0123456789abcdef';

/** Lower-case hex of a byte array. */
export function toHex(bytes) {
  let out = '';
  for (let i = 0; i < bytes.length; i++) out += HEX[bytes[i] >> 4] + HEX[bytes[i] & 15];
  return out;
}

/** The bytes of a hex string (upper or lower case); throws on anything else. */
export function fromHex(text) {
  if (typeof text !== 'string' || text.length % 2 || /[^0-9a-fA-F]/.test(text)) {
    throw new TypeError('not a hex string');
  }
  const out = new Uint8Array(text.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(2 * i, 2), 16);
  return out;
}

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Standard base64 (RFC 4648 §4) with `=` padding, as Python's base64.b64encode. */
export function toBase64(bytes) {
  let out = '';
  let i = 0;
  for (; i + 2 < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
    out += B64[n >> 18] + B64[(n >> 12) & 63] + B64[(n >> 6) & 63] + B64[n & 63];
  }
  if (i < bytes.length) {
    const n = (bytes[i] << 16) | ((i + 1 < bytes.length ? bytes[i + 1] : 0) << 8);
    out += B64[n >> 18] + B64[(n >> 12) & 63];
    out += i + 1 < bytes.length ? B64[(n >> 6) & 63] + '=' : '==';
  }
  return out;
}

/**
 * Decode canonical standard base64: re-encoding must give the same text, which
 * refuses whitespace, missing or extra padding and non-zero unused bits (as the
 * key manifest does, docs/FORMAT.md §13.1).
 */
export function fromBase64(text) {
  if (typeof text !== 'string' || text.length % 4) throw new TypeError('not canonical base64');
  const pad = text.endsWith('==') ? 2 : text.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((text.length / 4) * 3 - pad);
  let o = 0;
  for (let i = 0; i < text.length; i += 4) {
    let n = 0;
    for (let j = 0; j < 4; j++) {
      const c = text[i + j];
      const v = c === '=' && i + 4 === text.length && j >= 4 - pad ? 0 : B64.indexOf(c);
      if (v < 0) throw new TypeError('not canonical base64');
      n = (n << 6) | v;
    }
    if (o < out.length) out[o++] = n >> 16;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  if (toBase64(out) !== text) throw new TypeError('not canonical base64');
  return out;
}

/** Concatenate byte arrays into a new one. */
export function concat(...parts) {
  let size = 0;
  for (const p of parts) size += p.length;
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/** The ASCII/Latin-1 bytes of a string of code points below 256 (constants only). */
export function ascii(text) {
  const out = new Uint8Array(text.length);
  for (let i = 0; i < text.length; i++) out[i] = text.charCodeAt(i);
  return out;
}

/** Compare two byte arrays in time that depends only on their lengths. */
export function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  let diff = 0;
  for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
  return diff === 0;
}

/** True if every byte is zero (examines every byte). */
export function isZero(bytes) {
  let acc = 0;
  for (let i = 0; i < bytes.length; i++) acc |= bytes[i];
  return acc === 0;
}

/**
 * `n` bytes from the platform's CSPRNG. `crypto.getRandomValues` exists in
 * insecure contexts too (only `crypto.subtle` does not); without it there is no
 * safe randomness, so this throws rather than fall back to anything weaker.
 */
export function systemRandom(n) {
  const c = globalThis.crypto;
  if (!c || typeof c.getRandomValues !== 'function') {
    throw new Error('this browser has no secure random number generator (crypto.getRandomValues)');
  }
  const out = new Uint8Array(n);
  for (let at = 0; at < n; at += 65536) c.getRandomValues(out.subarray(at, Math.min(n, at + 65536)));
  return out;
}
