// Entry point of the crypto bundle (portal/static/dist/crypto.js): puts what
// form.js needs, and later the reply reader, on one global, `self.PortalCrypto`.

import * as envelope from './envelope.js';
import * as receipt from './receipt.js';
import { threadProofs } from './followup-proof.js';
import { parseKeys, verifyReply } from './signature.js';
import { CryptoUnavailable, getBackend, selfTest, setBackend } from './backend.js';
import { webCryptoBackend } from './backend-webcrypto.js';
import { fromBase64, toBase64, toHex } from './bytes.js';
import { createAttachmentSealer } from './attachment.js';

/** Use WebCrypto if the page has it and it passes its known answers; resolves true if so. */
async function useNative() {
  const native = webCryptoBackend();
  if (native && (await selfTest(native))) {
    setBackend(native);
    return true;
  }
  return false;
}

/** Use the pure-JS fallback bundle's backend if it passes its known answers. */
async function useFallback(backend) {
  if (backend && (await selfTest(backend))) {
    setBackend(backend);
    return true;
  }
  return false;
}

self.PortalCrypto = Object.freeze({
  formatVersion: envelope.VERSION,
  seal: envelope.seal,
  sealPieces: envelope.sealPieces,
  open: envelope.open,
  inspect: envelope.inspect,
  fingerprint: envelope.fingerprint,
  keyId: envelope.keyId,
  checkRecipients: envelope.checkRecipients,
  attachment: Object.freeze({ create: createAttachmentSealer }),
  receipt: Object.freeze({
    generate: receipt.generate,
    normalize: receipt.normalize,
    display: receipt.display,
    lookupToken: receipt.lookupToken,
    replySecret: receipt.replySecret,
    replyPublicKey: receipt.replyPublicKey,
  }),
  bytes: Object.freeze({ fromBase64, toBase64, toHex }),
  threadProofs,
  verifyReply,
  signingKeys: parseKeys,
  useNative,
  useFallback,
  backendName: () => getBackend().name,
  CryptoUnavailable,
});
