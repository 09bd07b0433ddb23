// Loading the crypto bundles a page script needs, each with its SRI hash from
// the form's data attributes (data-crypto-src/-integrity, data-fallback-src/
// -integrity). Shared by form.js and replies.js; esbuild bundles it into each.

function loadScript(src, integrity) {
  return new Promise((resolve, reject) => {
    if (!src || !integrity) {
      reject(new Error('the page names no script or no integrity hash'));
      return;
    }
    const script = document.createElement('script');
    script.src = src;
    script.integrity = integrity; // the browser refuses the script if its hash differs
    script.async = true;
    script.onload = () => resolve();
    script.onerror = () => reject(new Error(`could not load ${src}`));
    document.head.appendChild(script);
  });
}

/** Load crypto.js, then the fallback only if WebCrypto is missing or broken. */
export async function loadCrypto(form) {
  const d = form.dataset;
  await loadScript(d.cryptoSrc, d.cryptoIntegrity);
  const pc = self.PortalCrypto;
  if (!pc) throw new Error('the crypto bundle did not start');
  if (await pc.useNative()) return pc;
  await loadScript(d.fallbackSrc, d.fallbackIntegrity);
  if (await pc.useFallback(self.PortalCryptoFallback)) return pc;
  throw new Error('neither WebCrypto nor the fallback passed their known answers');
}
