// The built bundles: manifest and SRI hashes, size, and the crypto bundle
// working in a fresh realm with WebCrypto, with only the fallback, and with neither.

import assert from 'node:assert/strict';
import { describe, test, before, after } from 'node:test';
import { createHash, webcrypto } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import vm from 'node:vm';
import { gzipSync } from 'node:zlib';
import { build, BUNDLES } from '../build.mjs';
import { V1, readJson } from '../testlib/vectors.mjs';

const vectors = readJson('vectors.json');
const known = readJson('receipts.json');
let dir;
let code;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'portal-dist-'));
  await build({ quiet: true, out: dir });
  code = {};
  for (const name of Object.keys(BUNDLES)) code[name] = await readFile(join(dir, name), 'utf8');
});

after(() => rm(dir, { recursive: true, force: true }));

/** A fresh realm with `crypto` as given, running the named bundles. */
function realm(cryptoObject, ...bundles) {
  const ctx = vm.createContext({ crypto: cryptoObject, console });
  ctx.self = ctx;
  for (const name of bundles) vm.runInContext(code[name], ctx, { filename: name });
  return ctx;
}

// Runs inside the realm: seal a known-answer case with its randomness and open it again.
const CHECK = `(async (c, rounds) => {
  const hex = (s) => Uint8Array.from(s.match(/../g) || [], (h) => parseInt(h, 16));
  const bytes = hex(c.randomness_hex);
  let at = 0;
  const random = (n) => bytes.slice(at, (at += n));
  const text = hex(c.text_hex);
  const sealed = await PortalCrypto.seal(text, c.recipients.map((r) => hex(r.public_key_hex)), c.path, { random });
  const opened = await PortalCrypto.open(sealed, hex(c.recipients[0].secret_key_hex));
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', sealed));
  const r = rounds.receipt;
  return {
    backend: PortalCrypto.backendName(),
    sha256: PortalCrypto.bytes.toHex(digest),
    roundTrip: PortalCrypto.bytes.toHex(opened) === PortalCrypto.bytes.toHex(text),
    token: PortalCrypto.bytes.toHex(await PortalCrypto.receipt.lookupToken(r)),
    replyKey: PortalCrypto.bytes.toBase64(await PortalCrypto.receipt.replyPublicKey(r)),
  };
})`;

async function check(ctx) {
  const c = vectors.cases.find((x) => x.name === 'three_recipients_text_browser_path');
  const text = await readFile(join(V1, c.plaintext_file));
  const fn = vm.runInContext(CHECK, ctx);
  const result = await fn({ ...c, text_hex: text.toString('hex') }, { receipt: known.derivations[0].receipt });
  assert.equal(result.sha256, c.envelope_sha256);
  assert.ok(result.roundTrip);
  assert.equal(result.token, known.derivations[0].lookup_token_hex);
  assert.equal(result.replyKey, known.derivations[0].reply_public_key_base64);
  return result;
}

describe('built bundles', () => {
  test('manifest.json names every bundle with its SRI hash', async () => {
    const manifest = JSON.parse(await readFile(join(dir, 'manifest.json'), 'utf8'));
    assert.deepEqual(Object.keys(manifest).sort(), Object.keys(BUNDLES).sort());
    for (const [name, entry] of Object.entries(manifest)) {
      assert.equal(entry.path, `dist/${name}`);
      const hash = createHash('sha384').update(await readFile(join(dir, name))).digest('base64');
      assert.equal(entry.integrity, `sha384-${hash}`);
    }
  });

  test('no eval, no Function constructor, no WebAssembly; small enough', () => {
    for (const [name, text] of Object.entries(code)) {
      assert.doesNotMatch(text, /\beval\(|new Function\(|WebAssembly/, name);
    }
    const page = gzipSync(code['form.js'], { level: 9 }).length + gzipSync(code['crypto.js'], { level: 9 }).length;
    assert.ok(page <= 40_000, `form.js + crypto.js are ${page} bytes gzipped`);
  });

  test('crypto.js with WebCrypto reproduces a known-answer envelope and receipt values', async () => {
    const ctx = realm(webcrypto, 'crypto.js');
    assert.equal(await vm.runInContext('PortalCrypto.useNative()', ctx), true);
    assert.equal((await check(ctx)).backend, 'webcrypto');
    assert.equal(ctx.PortalCryptoFallback, undefined);
  });

  test('without crypto.subtle, crypto.js + aes-fallback.js give the same bytes', async () => {
    // Only getRandomValues, as in an insecure context; the digest in CHECK needs subtle,
    // so give the realm a crypto whose subtle appears only after the backend is chosen.
    const limited = { getRandomValues: (a) => webcrypto.getRandomValues(a) };
    const ctx = realm(limited, 'crypto.js', 'aes-fallback.js');
    assert.equal(await vm.runInContext('PortalCrypto.useNative()', ctx), false);
    assert.equal(await vm.runInContext('PortalCrypto.useFallback(self.PortalCryptoFallback)', ctx), true);
    limited.subtle = webcrypto.subtle; // for CHECK's digest only: the backend is already chosen
    assert.equal((await check(ctx)).backend, 'noble');
  });

  test('with neither, sealing fails loudly with CryptoUnavailable', async () => {
    const ctx = realm({ getRandomValues: (a) => webcrypto.getRandomValues(a) }, 'crypto.js');
    assert.equal(await vm.runInContext('PortalCrypto.useNative()', ctx), false);
    assert.equal(await vm.runInContext('PortalCrypto.useFallback(undefined)', ctx), false);
    const key = Buffer.from(vectors.cases[0].recipients[0].public_key_hex, 'hex').toString('base64');
    const outcome = await vm.runInContext(
      `PortalCrypto.seal(new Uint8Array(1), [PortalCrypto.bytes.fromBase64('${key}')], 'browser')
        .then(() => 'sealed', (e) => e.name + ': ' + e.message)`,
      ctx,
    );
    assert.match(outcome, /^CryptoUnavailable: .*crypto\.subtle/);
  });

  test('a broken WebCrypto fails its known answers and is not used', async () => {
    const broken = {
      getRandomValues: (a) => webcrypto.getRandomValues(a),
      subtle: new Proxy(webcrypto.subtle, {
        get(target, prop) {
          if (prop === 'encrypt') {
            return async (...args) => {
              const out = new Uint8Array(await target.encrypt(...args));
              out[0] ^= 1;
              return out.buffer;
            };
          }
          const value = target[prop];
          return typeof value === 'function' ? value.bind(target) : value;
        },
      }),
    };
    const ctx = realm(broken, 'crypto.js', 'aes-fallback.js');
    assert.equal(await vm.runInContext('PortalCrypto.useNative()', ctx), false);
    assert.equal(await vm.runInContext('PortalCrypto.useFallback(self.PortalCryptoFallback)', ctx), true);
  });
});
