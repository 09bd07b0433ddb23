// The encrypted envelope, version 1: the browser twin of portal/envelope.py.
//
// docs/FORMAT.md specifies every byte; tests/vectors/v1/ holds the known
// answers both implementations must reproduce. The content key is wrapped for
// each recipient exactly as libsodium's crypto_box_seal (tweetnacl's nacl.box
// with a BLAKE2b-192 nonce); the header is authenticated with HMAC-SHA256; the
// padded content is sealed with AES-256-GCM in 64 KiB STREAM chunks. HKDF, HMAC
// and AES-GCM come from a backend (backend.js): WebCrypto, or the pure-JS
// fallback, which puts the same bytes on the wire.

import nacl from 'tweetnacl';
import { blake2b } from '@noble/hashes/blake2.js';
import { ascii, concat, equalBytes, isZero, systemRandom, toHex } from './bytes.js';
import { getBackend } from './backend.js';

export const VERSION = 1;
export const MAGIC = ascii('UNRP');
export const CHUNK_SIZE = 65536;
export const CHUNK_EXPONENT = 16;
export const TAG_SIZE = 16;
export const KEY_SIZE = 32;
export const KEY_ID_SIZE = 16;
export const SEALED_KEY_SIZE = 32 + 16 + KEY_SIZE; // ephemeral public key, tag, boxed key
export const STANZA_SIZE = KEY_ID_SIZE + SEALED_KEY_SIZE;
export const MAC_SIZE = 32;
export const FIXED_HEADER_SIZE = 16;
export const LENGTH_PREFIX_SIZE = 8;
export const PAD_FLOOR = CHUNK_SIZE;
export const MAX_RECIPIENTS = 16;
export const MAX_PADDED_SIZE = 2 ** 40;
export const PATHS = Object.freeze({ browser: 1, server: 2, desk: 3 });

export const FINGERPRINT_DOMAIN = 'reprisals-portal key fingerprint v1';
export const HEADER_KEY_INFO = 'reprisals-portal/v1 header-mac';
export const PAYLOAD_KEY_INFO = 'reprisals-portal/v1 payload';

const DOMAIN_BYTES = ascii(FINGERPRINT_DOMAIN);
const HEADER_INFO_BYTES = ascii(HEADER_KEY_INFO);
const PAYLOAD_INFO_BYTES = ascii(PAYLOAD_KEY_INFO);
const PATH_NAMES = { 1: 'browser', 2: 'server', 3: 'desk' };
// p = 2^255 - 19, little-endian, to test that a key is in canonical form.
const FIELD_PRIME_LE = Uint8Array.from({ length: 32 }, (_, i) => (i === 0 ? 0xed : i === 31 ? 0x7f : 0xff));
// The five canonical encodings of the points of small order (docs/FORMAT.md §13.3):
// u = 0, 1, p - 1 and the two points of order 8. For a key already known to be
// canonical, X25519 with any clamped scalar gives zero exactly for these, so
// comparing with them is the same check as the reference's crypto_scalarmult
// with 32 bytes of 0x07 (which the tests confirm), without a ~30 ms scalar
// multiplication per key when the JIT is off.
const LOW_ORDER = [
  '0000000000000000000000000000000000000000000000000000000000000000',
  '0100000000000000000000000000000000000000000000000000000000000000',
  'ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f',
  'e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800',
  '5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157',
];
const SIGMA = ascii('expand 32-byte k');
const ZERO16 = new Uint8Array(16);
const BATCH_CHUNKS = 16; // chunk encryptions in flight at once

// --- errors: the same names, messages and hints as portal/envelope.py ---------

export class EnvelopeError extends Error {
  constructor(message, hint) {
    super(message);
    this.name = this.constructor.name;
    this.hint = hint === undefined ? this.constructor.hint : hint;
  }
}
EnvelopeError.hint = 'The envelope cannot be used.';

function errorClass(name, hint) {
  // Named explicitly: minifiers rename classes, and callers match on `name`.
  const cls = class extends EnvelopeError {
    constructor(message, h) {
      super(message, h);
      this.name = name;
    }
  };
  Object.defineProperty(cls, 'name', { value: name });
  cls.hint = hint;
  return cls;
}

export const NotAnEnvelope = errorClass(
  'NotAnEnvelope',
  'Check that this is the file the portal exported, not another file.',
);
export const UnsupportedVersion = errorClass(
  'UnsupportedVersion',
  'Upgrade portal-desk, or ask whoever sealed it which version they used.',
);
export const MalformedEnvelope = errorClass(
  'MalformedEnvelope',
  'The file is damaged or was not written by a portal implementation.',
);
export const TruncatedEnvelope = errorClass(
  'TruncatedEnvelope',
  'The file is incomplete: copy or export it again.',
);
export const NoMatchingKey = errorClass(
  'NoMatchingKey',
  'Use the secret key this envelope was sealed to:' +
    ' `portal-desk inspect --manifest keys/manifest.json FILE` names its recipients.',
);
export const AuthenticationFailed = errorClass(
  'AuthenticationFailed',
  'The envelope was altered or damaged after sealing; do not trust its contents.',
);
export const InvalidRecipientKey = errorClass(
  'InvalidRecipientKey',
  'Use the public key exactly as `portal-desk keygen` printed it.',
);
export const SizeMismatch = errorClass(
  'SizeMismatch',
  'The input changed while it was being sealed; seal it again.',
);

// --- sizes ---------------------------------------------------------------------

function bitLength(x) {
  let n = 0;
  for (; x >= 1; n++) x = Math.floor(x / 2);
  return n;
}

/** The Padme padded length of `length` (an integer below 2^53). */
export function padme(length) {
  if (length < 2) return length;
  const exponent = bitLength(length) - 1;
  const step = 2 ** (exponent - bitLength(exponent)); // mask + 1
  return Math.ceil(length / step) * step;
}

/** Bytes of padded plaintext for `contentSize` bytes of content. */
export function paddedSize(contentSize) {
  return padme(Math.max(contentSize + LENGTH_PREFIX_SIZE, PAD_FLOOR));
}

export function chunkCount(padded) {
  return Math.ceil(padded / CHUNK_SIZE);
}

export function headerSize(count) {
  return FIXED_HEADER_SIZE + count * STANZA_SIZE + MAC_SIZE;
}

/** The exact length of an envelope to `count` recipients with `padded` bytes of plaintext. */
export function envelopeSize(count, padded) {
  return headerSize(count) + padded + TAG_SIZE * chunkCount(padded);
}

// --- key ids and fingerprints ----------------------------------------------------

function fingerprintHash(publicKey) {
  if (!(publicKey instanceof Uint8Array) || publicKey.length !== KEY_SIZE) {
    throw new TypeError('an X25519 public key is 32 bytes');
  }
  return nacl.hash(concat(DOMAIN_BYTES, publicKey)); // SHA-512
}

/** The 16-byte key id of an X25519 public key. */
export function keyId(publicKey) {
  return fingerprintHash(publicKey).slice(0, KEY_ID_SIZE);
}

/** The fingerprint people compare: eight groups of five digits ("01234 56789 ..."). */
export function fingerprint(publicKey) {
  const d = fingerprintHash(publicKey);
  const groups = [];
  for (let at = 0; at < 40; at += 5) {
    let v = 0;
    for (let i = 0; i < 5; i++) v = v * 256 + d[at + i]; // below 2^40: exact
    groups.push(String(v % 100000).padStart(5, '0'));
  }
  return groups.join(' ');
}

/** The X25519 public key of a 32-byte secret key (clamped as usual). */
export function publicKeyOf(secretKey) {
  checkSecretKey(secretKey);
  return nacl.scalarMult.base(secretKey);
}

function checkSecretKey(secretKey) {
  if (!(secretKey instanceof Uint8Array) || secretKey.length !== KEY_SIZE) {
    throw new TypeError('an X25519 secret key is 32 bytes');
  }
}

// --- recipients -------------------------------------------------------------------

/** Refuse a recipient key that is the wrong length, not canonical, or of low order. */
export function checkPublicKey(publicKey) {
  const size = publicKey && publicKey.length;
  if (!(publicKey instanceof Uint8Array) || size !== KEY_SIZE) {
    throw new InvalidRecipientKey(`a public key is ${KEY_SIZE} bytes, not ${size}`);
  }
  let below = false; // little-endian comparison with p, from the most significant byte
  for (let i = KEY_SIZE - 1; i >= 0; i--) {
    if (publicKey[i] !== FIELD_PRIME_LE[i]) {
      below = publicKey[i] < FIELD_PRIME_LE[i];
      break;
    }
  }
  if (!below) throw new InvalidRecipientKey('the public key is not in canonical form');
  if (LOW_ORDER.includes(toHex(publicKey))) {
    throw new InvalidRecipientKey('the public key is a low-order point');
  }
}

/** Refuse a recipient list an envelope cannot carry (before any randomness is drawn). */
export function checkRecipients(recipients) {
  if (!Array.isArray(recipients) || recipients.length < 1 || recipients.length > MAX_RECIPIENTS) {
    throw new InvalidRecipientKey(`an envelope needs 1 to ${MAX_RECIPIENTS} recipients`);
  }
  for (const pk of recipients) checkPublicKey(pk);
  if (new Set(recipients.map(toHex)).size !== recipients.length) {
    throw new InvalidRecipientKey('the same recipient key is listed twice');
  }
}

function pathCode(path) {
  const code = typeof path === 'string' ? PATHS[path] : path;
  if (code !== 1 && code !== 2 && code !== 3) {
    throw new RangeError(`${String(path)} is not a valid sealing path (browser, server or desk)`);
  }
  return code;
}

// --- sealing ----------------------------------------------------------------------

function drawer(random) {
  return (n) => {
    const bytes = random(n);
    if (!(bytes instanceof Uint8Array) || bytes.length !== n) {
      throw new Error(`the random source gave no ${n} bytes`);
    }
    return Uint8Array.from(bytes);
  };
}

/** crypto_box_beforenm from the X25519 output: HSalsa20(key = shared, input = 16 zero bytes). */
function beforenm(shared) {
  const key = new Uint8Array(32);
  nacl.lowlevel.crypto_core_hsalsa20(key, ZERO16, shared, SIGMA);
  return key;
}

/** crypto_box_seal(contentKey, recipient) with the ephemeral secret drawn from `rng`. */
function wrapKey(contentKey, recipient, rng) {
  const esk = rng(KEY_SIZE);
  const epk = nacl.scalarMult.base(esk);
  const nonce = blake2b(concat(epk, recipient), { dkLen: 24 });
  const boxed = nacl.box(contentKey, nonce, recipient, esk); // tag || ciphertext
  esk.fill(0);
  return concat(epk, boxed);
}

function chunkNonce(counter, last) {
  const nonce = new Uint8Array(12);
  for (let i = 10, c = counter; i >= 0 && c > 0; i--, c = Math.floor(c / 256)) nonce[i] = c % 256;
  nonce[11] = last ? 1 : 0;
  return nonce;
}

function writeU64(view, at, value) {
  view.setUint32(at, Math.floor(value / 2 ** 32));
  view.setUint32(at + 4, value % 2 ** 32);
}

/**
 * Start an envelope of `size` bytes of content: checks the request, draws the
 * randomness (content key, then one ephemeral secret per recipient, as the
 * Python reference does) and builds the header. Returns
 * `{header, paddedSize, chunkCount, totalSize, sealChunk(index, plain)}`:
 * `sealChunk` seals chunk `index` of the *padded* plaintext (see
 * `paddedChunks`) and resolves to its ciphertext and tag. Chunks may be sealed
 * in any order and concurrently; the caller writes them in order after the header.
 */
export async function createSealer(size, recipients, path, options = {}) {
  const code = pathCode(path);
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError('size must not be negative');
  const padded = paddedSize(size);
  if (padded > MAX_PADDED_SIZE) throw new RangeError('the input is larger than an envelope can hold');
  checkRecipients(recipients);
  const backend = options.backend || getBackend();
  const rng = drawer(options.random || systemRandom);

  const contentKey = rng(KEY_SIZE);
  const count = recipients.length;
  const body = new Uint8Array(FIXED_HEADER_SIZE + count * STANZA_SIZE);
  const view = new DataView(body.buffer);
  body[0] = VERSION;
  body.set(MAGIC, 1);
  body[5] = code;
  body[6] = count;
  body[7] = CHUNK_EXPONENT;
  writeU64(view, 8, padded);
  recipients.forEach((pk, i) => {
    const at = FIXED_HEADER_SIZE + i * STANZA_SIZE;
    body.set(keyId(pk), at);
    body.set(wrapKey(contentKey, pk, rng), at + KEY_ID_SIZE);
  });
  const macKey = await backend.hkdfSha256(contentKey, HEADER_INFO_BYTES, 32);
  const header = concat(body, await backend.hmacSha256(macKey, body));
  const aead = await backend.aesGcm(await backend.hkdfSha256(contentKey, PAYLOAD_INFO_BYTES, 32));
  contentKey.fill(0);
  const total = chunkCount(padded);

  return {
    header,
    paddedSize: padded,
    chunkCount: total,
    totalSize: header.length + padded + TAG_SIZE * total,
    sealChunk(index, plain) {
      const expected = Math.min(CHUNK_SIZE, padded - index * CHUNK_SIZE);
      if (!(index >= 0 && index < total) || plain.length !== expected) {
        return Promise.reject(new RangeError(`chunk ${index} must be ${expected} bytes`));
      }
      return aead.encrypt(chunkNonce(index, index === total - 1), plain);
    },
  };
}

/**
 * Chunk `index` of the padded plaintext of `content` (a Uint8Array holding all
 * of it): the 8-byte big-endian length, the content, zeros up to `padded`.
 * A chunk entirely inside the content is a view of it, not a copy.
 */
export function paddedChunk(content, index, padded) {
  const start = index * CHUNK_SIZE - LENGTH_PREFIX_SIZE; // where the chunk starts in `content`
  const length = Math.min(CHUNK_SIZE, padded - index * CHUNK_SIZE);
  if (start >= 0 && start + length <= content.length) return content.subarray(start, start + length);
  const chunk = new Uint8Array(length);
  if (index === 0) writeU64(new DataView(chunk.buffer), 0, content.length);
  const from = Math.max(start, 0);
  const to = Math.min(start + length, content.length);
  if (to > from) chunk.set(content.subarray(from, to), from - start);
  return chunk;
}

/**
 * Seal `plaintext` (a Uint8Array) to `recipients` (32-byte X25519 public keys)
 * and resolve to the envelope bytes. `path` is "browser", "server" or "desk"
 * (or 1, 2, 3), with no default. `options.random(n)` (default
 * crypto.getRandomValues) is for known-answer tests only: a repeated content key
 * repeats AES-GCM nonces. `options.backend` overrides backend.js's choice.
 */
export async function seal(plaintext, recipients, path, options = {}) {
  if (!(plaintext instanceof Uint8Array)) throw new TypeError('the plaintext must be a Uint8Array');
  const sealer = await createSealer(plaintext.length, recipients, path, options);
  const out = new Uint8Array(sealer.totalSize);
  out.set(sealer.header, 0);
  const stride = CHUNK_SIZE + TAG_SIZE;
  for (let first = 0; first < sealer.chunkCount; first += BATCH_CHUNKS) {
    const last = Math.min(first + BATCH_CHUNKS, sealer.chunkCount);
    const pending = [];
    for (let i = first; i < last; i++) {
      pending.push(sealer.sealChunk(i, paddedChunk(plaintext, i, sealer.paddedSize)));
    }
    const sealed = await Promise.all(pending);
    sealed.forEach((s, k) => out.set(s, sealer.header.length + (first + k) * stride));
  }
  return out;
}

/**
 * Seal content that arrives in pieces (for example `File.slice` reads): yields
 * the header, then each sealed chunk, in order. `pieces` is an iterable or
 * async iterable of Uint8Array that must add up to exactly `size` bytes, else
 * SizeMismatch is thrown and everything yielded so far must be discarded.
 */
export async function* sealPieces(size, recipients, path, pieces, options = {}) {
  const sealer = await createSealer(size, recipients, path, options);
  yield sealer.header;
  let buf = new Uint8Array(Math.min(CHUNK_SIZE, sealer.paddedSize));
  writeU64(new DataView(buf.buffer), 0, size);
  let fill = LENGTH_PREFIX_SIZE;
  let index = 0;
  let seen = 0;
  const emit = async () => {
    const sealed = await sealer.sealChunk(index, buf.subarray(0, fill));
    index += 1;
    const next = Math.min(CHUNK_SIZE, sealer.paddedSize - index * CHUNK_SIZE);
    buf = new Uint8Array(Math.max(next, 0));
    fill = 0;
    return sealed;
  };
  for await (const piece of pieces) {
    seen += piece.length;
    if (seen > size) throw new SizeMismatch(`the input is longer than the ${size} bytes declared`);
    let at = 0;
    while (at < piece.length) {
      const take = Math.min(buf.length - fill, piece.length - at);
      buf.set(piece.subarray(at, at + take), fill);
      fill += take;
      at += take;
      if (fill === buf.length) yield await emit();
    }
  }
  if (seen !== size) throw new SizeMismatch(`the input ended after ${seen} of the ${size} bytes declared`);
  // The rest is zero padding: new buffers are already zero.
  while (index < sealer.chunkCount) {
    fill = buf.length;
    yield await emit();
  }
}

// --- reading ----------------------------------------------------------------------

function u32(bytes, at) {
  return ((bytes[at] << 24) | (bytes[at + 1] << 16) | (bytes[at + 2] << 8) | bytes[at + 3]) >>> 0;
}

/** Validate the 16-byte fixed header; returns {code, count, padded}. */
function parseFixed(data) {
  if (data.length < FIXED_HEADER_SIZE) {
    if (data.length === 0) throw new NotAnEnvelope('the input is empty');
    const seen = data.subarray(1, Math.min(data.length, 5));
    if (seen.length && equalBytes(seen, MAGIC.subarray(0, seen.length))) {
      throw new TruncatedEnvelope(`only ${data.length} bytes: the envelope header is cut short`);
    }
    throw new NotAnEnvelope('this is not a portal envelope (too short)');
  }
  if (!equalBytes(data.subarray(1, 5), MAGIC)) {
    throw new NotAnEnvelope('this is not a portal envelope (its first bytes are wrong)');
  }
  const version = data[0];
  const code = data[5];
  const count = data[6];
  const exponent = data[7];
  if (version !== VERSION) {
    throw new UnsupportedVersion(`envelope version ${version} is not supported (this is v1)`);
  }
  if (!PATH_NAMES[code]) throw new MalformedEnvelope(`unknown sealing path ${code} in the header`);
  if (exponent !== CHUNK_EXPONENT) {
    throw new MalformedEnvelope(`chunk size 2^${exponent} is not allowed in v1 (only 2^16)`);
  }
  if (count < 1 || count > MAX_RECIPIENTS) {
    throw new MalformedEnvelope(`${count} recipients declared; v1 allows 1 to ${MAX_RECIPIENTS}`);
  }
  const hi = u32(data, 8);
  const lo = u32(data, 12);
  const padded = hi * 2 ** 32 + lo; // exact while hi < 2^21; anything that large is refused below
  if (hi > 2 ** 8 || padded < PAD_FLOOR || padded > MAX_PADDED_SIZE || padme(padded) !== padded) {
    const shown = (BigInt(hi) << 32n) | BigInt(lo);
    throw new MalformedEnvelope(`declared padded size ${shown} is not a valid padded size`);
  }
  return { code, count, padded };
}

/**
 * Validate the header at the start of `data` (no key needed). Returns
 * `{version, path, pathCode, paddedSize, keyIds, headerSize, chunkCount, totalSize}`.
 */
export function parseHeader(data) {
  const { code, count, padded } = parseFixed(data.subarray(0, FIXED_HEADER_SIZE));
  const size = headerSize(count);
  if (data.length < size) {
    throw new TruncatedEnvelope(`the header needs ${size} bytes but only ${data.length} are present`);
  }
  const keyIds = [];
  for (let i = 0; i < count; i++) {
    const at = FIXED_HEADER_SIZE + i * STANZA_SIZE;
    keyIds.push(data.slice(at, at + KEY_ID_SIZE));
  }
  if (new Set(keyIds.map(toHex)).size !== count) {
    throw new MalformedEnvelope('the same recipient key id appears twice in the header');
  }
  return {
    version: VERSION,
    path: PATH_NAMES[code],
    pathCode: code,
    paddedSize: padded,
    keyIds,
    headerSize: size,
    chunkCount: chunkCount(padded),
    totalSize: envelopeSize(count, padded),
  };
}

/** Check an envelope's structure and exact length without any key (docs/FORMAT.md §12). */
export function inspect(envelope) {
  const header = parseHeader(envelope);
  if (envelope.length < header.totalSize) {
    const missing = header.totalSize - envelope.length;
    throw new TruncatedEnvelope(`${missing} bytes are missing from the end of the envelope`);
  }
  if (envelope.length > header.totalSize) {
    throw new MalformedEnvelope('there are extra bytes after the end of the envelope');
  }
  return header;
}

/** Find this key's stanza, open it, verify the header MAC; resolves to the content key or null. */
async function unwrap(raw, header, secretKey, backend) {
  const publicKey = publicKeyOf(secretKey);
  const ownId = toHex(keyId(publicKey));
  const index = header.keyIds.findIndex((id) => toHex(id) === ownId);
  if (index < 0) return null;
  const at = FIXED_HEADER_SIZE + index * STANZA_SIZE + KEY_ID_SIZE;
  const epk = raw.subarray(at, at + 32);
  const boxed = raw.subarray(at + 32, at + SEALED_KEY_SIZE);
  let contentKey = null;
  // X25519 maps 14 encodings to zero; the opener checks the output, as libsodium does.
  const shared = nacl.scalarMult(secretKey, epk);
  if (!isZero(shared)) {
    const nonce = blake2b(concat(epk, publicKey), { dkLen: 24 });
    contentKey = nacl.secretbox.open(boxed, nonce, beforenm(shared)); // crypto_box_open_afternm
  }
  if (!contentKey) {
    throw new AuthenticationFailed(
      'the key stanza for this secret key does not open: the header was altered',
    );
  }
  const macKey = await backend.hkdfSha256(contentKey, HEADER_INFO_BYTES, 32);
  const expected = await backend.hmacSha256(macKey, raw.subarray(0, raw.length - MAC_SIZE));
  if (!equalBytes(expected, raw.subarray(raw.length - MAC_SIZE))) {
    throw new AuthenticationFailed('the envelope header failed authentication');
  }
  return contentKey;
}

/**
 * Open an envelope held in memory with one secret key (a 32-byte Uint8Array)
 * or a list of them, tried in order. Resolves to the content only if all of it
 * authenticated; otherwise rejects with NotAnEnvelope, UnsupportedVersion,
 * MalformedEnvelope, TruncatedEnvelope, NoMatchingKey or AuthenticationFailed,
 * checked in the order of docs/FORMAT.md §11.2.
 */
export async function open(envelope, secretKeys, options = {}) {
  if (!(envelope instanceof Uint8Array)) throw new TypeError('the envelope must be a Uint8Array');
  const keys = secretKeys instanceof Uint8Array ? [secretKeys] : Array.from(secretKeys || []);
  keys.forEach(checkSecretKey);
  const backend = options.backend || getBackend();
  const fixed = parseFixed(envelope.subarray(0, FIXED_HEADER_SIZE));
  const raw = envelope.subarray(0, headerSize(fixed.count));
  const header = parseHeader(raw);
  let contentKey = null;
  for (const key of keys) {
    contentKey = await unwrap(raw, header, key, backend);
    if (contentKey) break;
  }
  if (!contentKey) {
    throw new NoMatchingKey('this envelope was not sealed to any of the secret keys given');
  }
  const aead = await backend.aesGcm(await backend.hkdfSha256(contentKey, PAYLOAD_INFO_BYTES, 32));
  const padded = header.paddedSize;
  const total = header.chunkCount;
  let pos = header.headerSize;
  let content = null;
  let out = 0;
  for (let i = 0; i < total; i++) {
    const plainLength = Math.min(CHUNK_SIZE, padded - i * CHUNK_SIZE);
    const where = `chunk ${i + 1} of ${total}`;
    if (envelope.length - pos < plainLength + TAG_SIZE) {
      throw new TruncatedEnvelope(`the envelope is cut short at ${where}`);
    }
    let plain;
    try {
      plain = await aead.decrypt(chunkNonce(i, i === total - 1), envelope.subarray(pos, pos + plainLength + TAG_SIZE));
    } catch {
      throw new AuthenticationFailed(`${where} failed authentication`);
    }
    pos += plainLength + TAG_SIZE;
    let skip = 0;
    if (i === 0) {
      const hi = u32(plain, 0);
      const size = hi * 2 ** 32 + u32(plain, 4);
      // Reject a huge length before any arithmetic on it (it may be up to 2^64 - 1).
      if (hi > 2 ** 8 || size > padded - LENGTH_PREFIX_SIZE || paddedSize(size) !== padded) {
        throw new MalformedEnvelope('the declared content size does not match the padding');
      }
      content = new Uint8Array(size);
      skip = LENGTH_PREFIX_SIZE;
    }
    const keep = Math.min(content.length - out, plainLength - skip);
    if (!isZero(plain.subarray(skip + keep))) {
      throw new MalformedEnvelope('the padding is not zero: the sealer is faulty');
    }
    content.set(plain.subarray(skip, skip + keep), out);
    out += keep;
  }
  if (pos < envelope.length) {
    throw new MalformedEnvelope('there are extra bytes after the end of the envelope');
  }
  return content;
}
