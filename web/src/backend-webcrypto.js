// The WebCrypto backend: HKDF-SHA256, HMAC-SHA256 and AES-256-GCM through
// crypto.subtle, which is native code (fast even with the JIT and WebAssembly
// off). crypto.subtle exists only in secure contexts; see backend.js.

/**
 * A backend over `subtle` (default: the page's `crypto.subtle`), or null when
 * there is none. Every method returns a Promise of a Uint8Array.
 */
export function webCryptoBackend(subtle = globalThis.crypto && globalThis.crypto.subtle) {
  if (!subtle) return null;
  const GCM = { name: 'AES-GCM' };
  return {
    name: 'webcrypto',

    /** HKDF-SHA256 with no salt (RFC 5869: HashLen zero bytes) and `length` bytes out. */
    async hkdfSha256(ikm, info, length = 32) {
      const key = await subtle.importKey('raw', ikm, 'HKDF', false, ['deriveBits']);
      const params = { name: 'HKDF', hash: 'SHA-256', salt: new Uint8Array(32), info };
      return new Uint8Array(await subtle.deriveBits(params, key, length * 8));
    },

    /** HMAC-SHA256, the full 32 bytes. */
    async hmacSha256(key, data) {
      const params = { name: 'HMAC', hash: 'SHA-256' };
      const k = await subtle.importKey('raw', key, params, false, ['sign']);
      return new Uint8Array(await subtle.sign('HMAC', k, data));
    },

    /**
     * An AES-256-GCM context for one key: `encrypt(nonce, data)` gives
     * ciphertext || 16-byte tag; `decrypt(nonce, sealed)` rejects on a bad tag.
     * WebCrypto copies `data` when the call is made, so callers may reuse it.
     */
    async aesGcm(key) {
      const k = await subtle.importKey('raw', key, GCM, false, ['encrypt', 'decrypt']);
      return {
        async encrypt(nonce, data) {
          const params = { name: 'AES-GCM', iv: nonce, tagLength: 128 };
          return new Uint8Array(await subtle.encrypt(params, k, data));
        },
        async decrypt(nonce, sealed) {
          const params = { name: 'AES-GCM', iv: nonce, tagLength: 128 };
          return new Uint8Array(await subtle.decrypt(params, k, sealed));
        },
      };
    },
  };
}
