// Chooses the crypto backend for HKDF, HMAC and AES-GCM: WebCrypto when the
// page has crypto.subtle, else the pure-JS fallback that aes-fallback.js puts
// on `self.PortalCryptoFallback`. Never silently: with neither, it throws.

import { ascii, equalBytes, fromHex } from './bytes.js';
import { webCryptoBackend } from './backend-webcrypto.js';

export class CryptoUnavailable extends Error {
  constructor(message) {
    super(message);
    this.name = 'CryptoUnavailable';
  }
}

let chosen = null;

/** Use `backend` from now on (null: choose again on the next call). */
export function setBackend(backend) {
  chosen = backend;
}

/** The backend in use: the one set, else WebCrypto, else the loaded fallback. */
export function getBackend() {
  if (chosen) return chosen;
  const native = webCryptoBackend();
  if (native) return (chosen = native);
  if (globalThis.PortalCryptoFallback) return (chosen = globalThis.PortalCryptoFallback);
  throw new CryptoUnavailable(
    'this browser offers no AES-GCM (no crypto.subtle) and the fallback is not loaded',
  );
}

// Known answers, computed with Python's `cryptography` (docs/FORMAT.md §6).
const KAT = {
  ikm: '000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f',
  kh: 'f83f562386e93163888cf23e833b02876b71f4e27525cccb0ff0bd248467f469',
  kp: '3f8cab018cd606de79916fd74ab1f281b51ff83feb634416ae8a84e3d17eaa4f',
  mac: '007898ae67a5c364ba90855555e284bdcf1c63f4e30e10d5fc87cd3ceec60aa3',
  gcm:
    '872d1eea00eef960f7bf3b0b8bd35f9be48c4c21b9cf133b423cf628c1817ec0' +
    '3a622a2a31284db1fffebdbbf697ca19c68fee6d0241d498',
};

/**
 * Run `backend` on known answers (HKDF, HMAC, AES-GCM both ways and a forged
 * tag). Resolves true only if every answer is right; never throws.
 */
export async function selfTest(backend) {
  try {
    const ikm = fromHex(KAT.ikm);
    const kh = await backend.hkdfSha256(ikm, ascii('reprisals-portal/v1 header-mac'));
    const kp = await backend.hkdfSha256(ikm, ascii('reprisals-portal/v1 payload'));
    if (!equalBytes(kh, fromHex(KAT.kh)) || !equalBytes(kp, fromHex(KAT.kp))) return false;
    const mac = await backend.hmacSha256(kp, ascii('reprisals-portal self-test'));
    if (!equalBytes(mac, fromHex(KAT.mac))) return false;
    const aead = await backend.aesGcm(kp);
    const nonce = new Uint8Array(12);
    nonce[11] = 1;
    const plain = Uint8Array.from({ length: 40 }, (_, i) => i);
    const sealed = await aead.encrypt(nonce, plain);
    if (!equalBytes(sealed, fromHex(KAT.gcm))) return false;
    if (!equalBytes(await aead.decrypt(nonce, sealed), plain)) return false;
    sealed[sealed.length - 1] ^= 1;
    try {
      await aead.decrypt(nonce, sealed);
      return false;
    } catch {
      return true;
    }
  } catch {
    return false;
  }
}
