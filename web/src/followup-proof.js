// The follow-up document's thread proofs (docs/FORMAT.md §15.7), part of the
// crypto bundle: for each team key, HKDF-SHA256 of the X25519 shared secret
// between the receipt's reply secret and that key, with the reply public key
// and the team key in its info. Only the holder of the receipt can make one
// (the server keeps the reply public key, never the secret); the desk checks
// it with its own secret key. portal/followup.py is the reference.

import nacl from 'tweetnacl';
import { ascii, concat, toBase64, toHex } from './bytes.js';
import { getBackend } from './backend.js';
import { keyId } from './envelope.js';

export const PROOF_INFO = 'reprisals-portal/v1 followup thread-proof';

/** The 32-byte proof for one team key. */
export function threadProof(replySecret, replyPublicKey, teamKey, backend) {
  const shared = nacl.scalarMult(replySecret, teamKey);
  const info = concat(ascii(PROOF_INFO), replyPublicKey, teamKey);
  return (backend || getBackend()).hkdfSha256(shared, info, 32);
}

/**
 * The reply public key and the `thread_proofs` member for `teamKeys`:
 * `{ replyPublicKey, proofs: { <key id hex>: <base64 proof> } }`.
 */
export async function threadProofs(replySecret, teamKeys, backend) {
  const replyPublicKey = nacl.scalarMult.base(replySecret);
  const proofs = {};
  for (const key of teamKeys) {
    proofs[toHex(keyId(key))] = toBase64(await threadProof(replySecret, replyPublicKey, key, backend));
  }
  return { replyPublicKey, proofs };
}
