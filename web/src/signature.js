// The desk's signatures on replies (docs/BUNDLES.md §8.6), checked in the browser before a
// reply is opened: Ed25519 (tweetnacl, pure JS: no WebAssembly, no JIT, no crypto.subtle
// needed) over "reprisals-portal/v1 reply\n" || thread id (32 ASCII hex digits) ||
// SHA-256(envelope) (@noble/hashes, pure JS). The twin of portal/signing.py; both are
// checked against tests/vectors/v1/signatures.json. Part of the crypto bundle
// (self.PortalCrypto.verifyReply and .signingKeys), which replies.js loads with SRI.

import nacl from 'tweetnacl';
import { sha256 } from '@noble/hashes/sha2.js';
import { ascii, concat, fromBase64 } from './bytes.js';

export const REPLY_PURPOSE = 'reprisals-portal/v1 reply\n';
const THREAD = /^[0-9a-f]{32}$/;
// The order of the Ed25519 group, little-endian: a signature's S must be below it.
const ORDER = Uint8Array.from([
  0xed, 0xd3, 0xf5, 0x5c, 0x1a, 0x63, 0x12, 0x58, 0xd6, 0x9c, 0xf7, 0xa2, 0xde, 0xf9, 0xde, 0x14,
  0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x10,
]);

/** The bytes the desk signs for one reply. */
export function replyMessage(threadId, envelope) {
  if (typeof threadId !== 'string' || !THREAD.test(threadId)) throw new Error('bad thread id');
  return concat(ascii(REPLY_PURPOSE), ascii(threadId), sha256(envelope));
}

/** Whether S (bytes 32..63, little-endian) is below the group order, as libsodium requires. */
function canonicalS(sig) {
  for (let i = 31; i >= 0; i -= 1) {
    if (sig[32 + i] !== ORDER[i]) return sig[32 + i] < ORDER[i];
  }
  return false;
}

/** The signing public keys a page embeds: base64 strings separated by spaces. */
export function parseKeys(text) {
  const keys = [];
  for (const part of String(text || '').split(' ')) {
    if (!part) continue;
    try {
      const key = fromBase64(part);
      if (key.length === 32) keys.push(key);
    } catch {
      // not base64: skipped, so a damaged page verifies nothing rather than something wrong
    }
  }
  return keys;
}

/** Whether one of `keys` signed `envelope` (bytes) for `threadId`; `signature` in base64. */
export function verifyReply(keys, threadId, envelope, signature) {
  let sig;
  let message;
  try {
    sig = fromBase64(String(signature));
    message = replyMessage(threadId, envelope);
  } catch {
    return false;
  }
  if (sig.length !== 64 || !canonicalS(sig)) return false;
  return keys.some((key) => {
    try {
      return nacl.sign.detached.verify(message, sig, key);
    } catch {
      return false;
    }
  });
}
