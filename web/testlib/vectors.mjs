// Shared by the node tests and web/tools/interop.mjs (kept outside web/test/,
// where node --test would run every file as a test).

import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { fromHex } from '../src/bytes.js';

export const ROOT = dirname(dirname(dirname(fileURLToPath(import.meta.url))));
export const V1 = join(ROOT, 'tests', 'vectors', 'v1');

export function readJson(name) {
  return JSON.parse(readFileSync(join(V1, name), 'utf8'));
}

export function readBytes(name) {
  const buf = readFileSync(join(V1, name));
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

/** A random source that replays `hex` and fails loudly if asked for more. */
export function replay(hex) {
  const bytes = fromHex(hex);
  let at = 0;
  const random = (n) => {
    if (at + n > bytes.length) throw new Error('the replayed randomness ran out');
    const out = bytes.slice(at, at + n);
    at += n;
    return out;
  };
  random.used = () => at;
  random.total = bytes.length;
  return random;
}

export function plaintextOf(c) {
  return c.plaintext_hex !== undefined ? fromHex(c.plaintext_hex) : readBytes(c.plaintext_file);
}
