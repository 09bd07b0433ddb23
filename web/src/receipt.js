// The submitter's receipt and the values derived from it: the browser twin of
// portal/receipt.py (docs/FORMAT.md §14; known answers in
// tests/vectors/v1/receipts.json).
//
// A receipt is 30 decimal digits shown in six groups of five: 29 uniformly
// random digits (96.3 bits) and a Damm check digit. From its 30 ASCII digits,
// HKDF-SHA256 (no salt) derives the lookup token and the reply secret key,
// with one purpose string each.

import nacl from 'tweetnacl';
import { ascii, systemRandom } from './bytes.js';
import { PY_WHITESPACE } from './text.js';
import { getBackend } from './backend.js';

export const RANDOM_DIGITS = 29;
export const LENGTH = RANDOM_DIGITS + 1;
export const GROUP = 5;
export const LOOKUP_INFO = 'reprisals-portal/v1 receipt lookup-token';
export const REPLY_INFO = 'reprisals-portal/v1 receipt reply-key';
const MAX_TEXT = 200;

// Ignored anywhere in a typed receipt: space, hyphen-minus, no-break space,
// thin space, narrow no-break space, tab (receipt.SEPARATORS).
const SEPARATORS = new Set([0x20, 0x2d, 0xa0, 0x2009, 0x202f, 0x09]);


// The zero of every run of ten Unicode decimal digits (general category Nd,
// which Unicode always encodes as 0..9 in a row), as in Python 3.11's
// unicodedata (Unicode 14.0), so that both sides accept exactly the same text.
const DIGIT_ZEROS = [
  0x30, 0x660, 0x6f0, 0x7c0, 0x966, 0x9e6, 0xa66, 0xae6, 0xb66, 0xbe6, 0xc66, 0xce6, 0xd66, 0xde6,
  0xe50, 0xed0, 0xf20, 0x1040, 0x1090, 0x17e0, 0x1810, 0x1946, 0x19d0, 0x1a80, 0x1a90, 0x1b50,
  0x1bb0, 0x1c40, 0x1c50, 0xa620, 0xa8d0, 0xa900, 0xa9d0, 0xa9f0, 0xaa50, 0xabf0, 0xff10, 0x104a0,
  0x10d30, 0x11066, 0x110f0, 0x11136, 0x111d0, 0x112f0, 0x11450, 0x114d0, 0x11650, 0x116c0,
  0x11730, 0x118e0, 0x11950, 0x11c50, 0x11d50, 0x11da0, 0x16a60, 0x16ac0, 0x16b50, 0x1d7ce,
  0x1d7d8, 0x1d7e2, 0x1d7ec, 0x1d7f6, 0x1e140, 0x1e2f0, 0x1e950, 0x1fbf0,
];

// The Damm algorithm's totally anti-symmetric quasigroup of order 10.
export const DAMM = [
  [0, 3, 1, 7, 5, 9, 8, 6, 4, 2],
  [7, 0, 9, 2, 1, 5, 4, 8, 6, 3],
  [4, 2, 0, 6, 8, 7, 1, 3, 5, 9],
  [1, 7, 5, 0, 9, 8, 3, 4, 2, 6],
  [6, 1, 2, 3, 0, 4, 5, 9, 7, 8],
  [3, 6, 7, 4, 2, 0, 9, 5, 8, 1],
  [5, 8, 6, 9, 7, 2, 0, 1, 3, 4],
  [8, 9, 4, 5, 3, 6, 2, 0, 1, 7],
  [9, 4, 3, 8, 6, 1, 7, 2, 0, 5],
  [2, 5, 8, 1, 4, 3, 6, 7, 9, 0],
];

export class InvalidReceipt extends Error {
  constructor(message) {
    super(message);
    this.name = 'InvalidReceipt';
  }
}

/** The Damm check digit of a string of ASCII digits (0 when appended to it). */
export function damm(digits) {
  let interim = 0;
  for (let i = 0; i < digits.length; i++) interim = DAMM[interim][digits.charCodeAt(i) - 48];
  return interim;
}

/** Digits in groups of five, for showing and writing down. */
export function display(digits) {
  const groups = [];
  for (let i = 0; i < digits.length; i += GROUP) groups.push(digits.slice(i, i + GROUP));
  return groups.join(' ');
}

/**
 * A new receipt in display form ("01234 56789 ..."). Draws `random(29)` until
 * it has 29 bytes below 250 (each taken modulo 10, so every digit is uniform),
 * exactly as portal.receipt.generate does.
 */
export function generate(random = systemRandom) {
  let body = '';
  while (body.length < RANDOM_DIGITS) {
    const bytes = random(RANDOM_DIGITS);
    if (!(bytes instanceof Uint8Array) || bytes.length !== RANDOM_DIGITS) {
      throw new Error(`the random source gave no ${RANDOM_DIGITS} bytes`);
    }
    for (const b of bytes) if (b < 250) body += String(b % 10);
  }
  body = body.slice(0, RANDOM_DIGITS);
  return display(body + String(damm(body)));
}

/** The value of a Unicode decimal digit (by code point), or null (unicodedata.decimal). */
export function digitValue(cp) {
  for (const zero of DIGIT_ZEROS) {
    if (cp >= zero && cp <= zero + 9) return cp - zero;
  }
  return null;
}

/** The 30 ASCII digits of a receipt as typed; throws InvalidReceipt with Python's message. */
export function normalize(text) {
  const chars = Array.from(String(text), (c) => c.codePointAt(0)); // code points, as Python counts
  if (chars.length > MAX_TEXT) throw new InvalidReceipt('that is far longer than a receipt');
  let start = 0;
  let end = chars.length;
  while (start < end && PY_WHITESPACE.has(chars[start])) start++;
  while (end > start && PY_WHITESPACE.has(chars[end - 1])) end--;
  let digits = '';
  for (let i = start; i < end; i++) {
    if (SEPARATORS.has(chars[i])) continue;
    const value = digitValue(chars[i]);
    if (value === null) throw new InvalidReceipt('a receipt has only digits; check what you typed');
    digits += String(value);
  }
  if (digits.length !== LENGTH) {
    throw new InvalidReceipt(`a receipt has ${LENGTH} digits; this has ${digits.length}`);
  }
  if (damm(digits) !== 0) {
    throw new InvalidReceipt('one of the digits is wrong, or two are swapped; check the receipt');
  }
  return digits;
}

function derive(receipt, info, backend) {
  return (backend || getBackend()).hkdfSha256(ascii(normalize(receipt)), ascii(info), 32);
}

/** The 32-byte lookup token (sent to the server, never stored there). */
export function lookupToken(receipt, backend) {
  return derive(receipt, LOOKUP_INFO, backend);
}

/** The X25519 secret key that opens replies to this receipt's thread. */
export function replySecret(receipt, backend) {
  return derive(receipt, REPLY_INFO, backend);
}

/** The public half of replySecret, which the server stores for staff to seal replies to. */
export async function replyPublicKey(receipt, backend) {
  return nacl.scalarMult.base(await replySecret(receipt, backend));
}
