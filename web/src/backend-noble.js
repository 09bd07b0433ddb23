// The pure-JS backend, for pages without crypto.subtle (Onion Browser and
// Brave treat plain-http onion addresses as insecure contexts). Audited noble
// code; it puts exactly the same bytes on the wire as backend-webcrypto.js.
// It is built into its own bundle (aes-fallback.js) and loaded only when needed.

import { gcm } from '@noble/ciphers/aes.js';
import { hkdf } from '@noble/hashes/hkdf.js';
import { hmac } from '@noble/hashes/hmac.js';
import { sha256 } from '@noble/hashes/sha2.js';

const ZERO_SALT = new Uint8Array(32);

export const nobleBackend = {
  name: 'noble',

  async hkdfSha256(ikm, info, length = 32) {
    return hkdf(sha256, ikm, ZERO_SALT, info, length);
  },

  async hmacSha256(key, data) {
    return hmac(sha256, key, data);
  },

  async aesGcm(key) {
    const k = Uint8Array.from(key);
    return {
      async encrypt(nonce, data) {
        return gcm(k, Uint8Array.from(nonce)).encrypt(data);
      },
      async decrypt(nonce, sealed) {
        return gcm(k, Uint8Array.from(nonce)).decrypt(sealed);
      },
    };
  },
};
