// receipt.js against tests/vectors/v1/receipts.json (made with portal/receipt.py).

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { webcrypto } from 'node:crypto';
import { toBase64, toHex } from '../src/bytes.js';
import { webCryptoBackend } from '../src/backend-webcrypto.js';
import { nobleBackend } from '../src/backend-noble.js';
import * as receipt from '../src/receipt.js';
import { readJson, replay } from '../testlib/vectors.mjs';

const known = readJson('receipts.json');
const BACKENDS = { webcrypto: webCryptoBackend(webcrypto.subtle), noble: nobleBackend };

describe('receipts.json', () => {
  test('constants', () => {
    const c = known.constants;
    assert.equal(receipt.RANDOM_DIGITS, c.random_digits);
    assert.equal(receipt.LENGTH, c.length);
    assert.equal(receipt.GROUP, c.group);
    assert.equal(receipt.LOOKUP_INFO, c.lookup_info);
    assert.equal(receipt.REPLY_INFO, c.reply_info);
    assert.deepEqual(receipt.DAMM.map((row) => row.join('')), c.damm_table);
  });

  test('generate draws the same bytes and makes the same receipt', () => {
    assert.ok(known.generate.length >= 4);
    for (const g of known.generate) {
      const random = replay(g.randomness_hex);
      assert.equal(receipt.generate(random), g.receipt, g.name);
      assert.equal(random.used(), random.total, `${g.name}: every byte offered was drawn`);
    }
  });

  for (const [name, backend] of Object.entries(BACKENDS)) {
    test(`derivations (${name})`, async () => {
      for (const d of known.derivations) {
        assert.equal(receipt.normalize(d.receipt), d.digits);
        assert.equal(toHex(await receipt.lookupToken(d.receipt, backend)), d.lookup_token_hex);
        assert.equal(toHex(await receipt.replySecret(d.receipt, backend)), d.reply_secret_hex);
        const pub = await receipt.replyPublicKey(d.receipt, backend);
        assert.equal(toHex(pub), d.reply_public_key_hex);
        assert.equal(toBase64(pub), d.reply_public_key_base64);
        // Any typed form of the same receipt derives the same values.
        assert.equal(toHex(await receipt.lookupToken(d.digits, backend)), d.lookup_token_hex);
      }
    });
  }

  test('normalize accepts what Python accepts', () => {
    for (const n of known.normalize) assert.equal(receipt.normalize(n.input), n.digits, n.description);
  });

  test('normalize refuses what Python refuses, with the same message', () => {
    for (const n of known.invalid) {
      assert.throws(
        () => receipt.normalize(n.input),
        (err) => err instanceof receipt.InvalidReceipt && err.name === 'InvalidReceipt' && err.message === n.error,
        n.description,
      );
    }
  });
});

describe('receipt properties', () => {
  test('a fresh receipt is six groups of five digits with a valid check digit', () => {
    const seen = new Set();
    for (let i = 0; i < 200; i++) {
      const r = receipt.generate();
      assert.match(r, /^\d{5}( \d{5}){5}$/);
      assert.equal(receipt.damm(r.replace(/ /g, '')), 0);
      seen.add(r);
    }
    assert.equal(seen.size, 200);
  });

  test('Damm catches every single-digit error and adjacent swap of a receipt', () => {
    const digits = receipt.normalize(known.derivations[0].receipt);
    for (let i = 0; i < digits.length; i++) {
      for (let d = 0; d < 10; d++) {
        if (String(d) === digits[i]) continue;
        const wrong = digits.slice(0, i) + d + digits.slice(i + 1);
        assert.throws(() => receipt.normalize(wrong), /wrong, or two are swapped/);
      }
      if (i + 1 < digits.length && digits[i] !== digits[i + 1]) {
        const swapped = digits.slice(0, i) + digits[i + 1] + digits[i] + digits.slice(i + 2);
        assert.throws(() => receipt.normalize(swapped), /wrong, or two are swapped/);
      }
    }
  });

  test('the digit table agrees with \\p{Nd} wherever both know the code point', () => {
    // Node may know a newer Unicode than Python 3.11 (14.0): the table may only
    // lack digits, never add any, and every digit it has is \p{Nd}.
    let count = 0;
    for (let cp = 0; cp < 0x110000; cp++) {
      const value = receipt.digitValue(cp);
      if (value === null) continue;
      count++;
      const ch = String.fromCodePoint(cp);
      assert.ok(/\p{Nd}/u.test(ch), `U+${cp.toString(16)}`);
      assert.equal(receipt.digitValue(cp - value), 0);
      if (value === 0) assert.equal(receipt.normalize(ch.repeat(30)), '0'.repeat(30));
    }
    assert.equal(count, 660);
  });

  test('a random source that returns the wrong length is refused', () => {
    assert.throws(() => receipt.generate(() => new Uint8Array(3)), /random source/);
  });
});
