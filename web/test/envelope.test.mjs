// envelope.js against tests/vectors/v1/ with both backends, byte for byte.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { webcrypto } from 'node:crypto';
import nacl from 'tweetnacl';
import { concat, fromHex, isZero, toHex } from '../src/bytes.js';
import { webCryptoBackend } from '../src/backend-webcrypto.js';
import { nobleBackend } from '../src/backend-noble.js';
import * as env from '../src/envelope.js';
import { plaintextOf, readBytes, readJson, replay } from '../testlib/vectors.mjs';

const vectors = readJson('vectors.json');
const invalid = readJson('invalid.json');
const BACKENDS = { webcrypto: webCryptoBackend(webcrypto.subtle), noble: nobleBackend };
const P = 2n ** 255n - 19n;

function le(n) {
  const out = new Uint8Array(32);
  for (let i = 0; i < 32; i++) out[i] = Number((n >> BigInt(8 * i)) & 255n);
  return out;
}

function noRandom() {
  throw new Error('randomness was drawn');
}

async function rejectsNamed(promiseOrFn, name) {
  await assert.rejects(promiseOrFn, (err) => {
    assert.equal(err.name, name, `expected ${name}, got ${err.name}: ${err.message}`);
    return true;
  });
}

describe('constants and tables', () => {
  test('constants match vectors.json', () => {
    const c = vectors.constants;
    assert.equal(env.VERSION, c.version);
    assert.equal(toHex(env.MAGIC), c.magic_hex);
    assert.equal(env.CHUNK_SIZE, c.chunk_size);
    assert.equal(env.TAG_SIZE, c.tag_size);
    assert.equal(env.KEY_ID_SIZE, c.key_id_size);
    assert.equal(env.STANZA_SIZE, c.stanza_size);
    assert.equal(env.MAC_SIZE, c.mac_size);
    assert.equal(env.FIXED_HEADER_SIZE, c.fixed_header_size);
    assert.equal(env.LENGTH_PREFIX_SIZE, c.length_prefix_size);
    assert.equal(env.PAD_FLOOR, c.pad_floor);
    assert.equal(env.MAX_RECIPIENTS, c.max_recipients);
    assert.deepEqual({ ...env.PATHS }, c.paths);
    assert.equal(env.FINGERPRINT_DOMAIN, c.fingerprint_domain);
    assert.equal(env.HEADER_KEY_INFO, c.header_mac_info);
    assert.equal(env.PAYLOAD_KEY_INFO, c.payload_key_info);
  });

  test('padme table', () => {
    for (const { length, padme } of vectors.padme) assert.equal(env.padme(length), padme, `padme(${length})`);
    assert.equal(vectors.padme.length, 22);
  });

  test('padded sizes table', () => {
    for (const r of vectors.padded_sizes) {
      assert.equal(env.paddedSize(r.content_size), r.padded_size, `${r.content_size}`);
      assert.equal(env.chunkCount(r.padded_size), r.chunk_count);
    }
    // Padme is idempotent: a valid P is its own padme.
    for (const r of vectors.padded_sizes) assert.equal(env.padme(r.padded_size), r.padded_size);
    assert.equal(env.paddedSize(2 ** 40 - 8), 2 ** 40);
    assert.ok(env.paddedSize(2 ** 40 - 7) > 2 ** 40);
  });

  test('fingerprint and key id table', () => {
    assert.equal(vectors.fingerprints.length, 6);
    for (const f of vectors.fingerprints) {
      const pk = fromHex(f.public_key_hex);
      assert.equal(toHex(env.keyId(pk)), f.key_id_hex, f.description);
      assert.equal(env.fingerprint(pk), f.fingerprint, f.description);
    }
    assert.throws(() => env.fingerprint(new Uint8Array(31)), TypeError);
  });

  test('docs/FORMAT.md §6 example with both backends', async () => {
    const k = Uint8Array.from({ length: 32 }, (_, i) => i);
    for (const backend of Object.values(BACKENDS)) {
      const kh = await backend.hkdfSha256(k, new TextEncoder().encode(env.HEADER_KEY_INFO));
      const kp = await backend.hkdfSha256(k, new TextEncoder().encode(env.PAYLOAD_KEY_INFO));
      assert.equal(toHex(kh), 'f83f562386e93163888cf23e833b02876b71f4e27525cccb0ff0bd248467f469');
      assert.equal(toHex(kp), '3f8cab018cd606de79916fd74ab1f281b51ff83feb634416ae8a84e3d17eaa4f');
    }
  });
});

for (const [backendName, backend] of Object.entries(BACKENDS)) {
  describe(`known-answer envelopes (${backendName})`, () => {
    for (const c of vectors.cases) {
      test(`${c.name} seals byte for byte`, async () => {
        const plaintext = plaintextOf(c);
        assert.equal(plaintext.length, c.plaintext_size);
        const random = replay(c.randomness_hex);
        const recipients = c.recipients.map((r) => fromHex(r.public_key_hex));
        const sealed = await env.seal(plaintext, recipients, c.path, { random, backend });
        assert.equal(random.used(), random.total, 'every random byte, and no more, was drawn');
        assert.equal(sealed.length, c.envelope_size);
        assert.equal(toHex(sealed.subarray(0, c.header_size)), c.header_hex);
        assert.ok(Buffer.from(sealed).equals(Buffer.from(readBytes(c.envelope_file))));
        // The numeric path code gives the same envelope.
        const again = await env.seal(plaintext, recipients, c.path_code, {
          random: replay(c.randomness_hex),
          backend,
        });
        assert.ok(Buffer.from(again).equals(Buffer.from(sealed)));
      });

      test(`${c.name} opens with every recipient's key`, async () => {
        const data = readBytes(c.envelope_file);
        const expected = plaintextOf(c);
        for (const r of c.recipients) {
          const opened = await env.open(data, fromHex(r.secret_key_hex), { backend });
          assert.ok(Buffer.from(opened).equals(Buffer.from(expected)), r.label);
        }
        const header = env.inspect(data);
        assert.equal(header.path, c.path);
        assert.equal(header.pathCode, c.path_code);
        assert.equal(header.paddedSize, c.padded_size);
        assert.equal(header.chunkCount, c.chunk_count);
        assert.equal(header.headerSize, c.header_size);
        assert.equal(header.totalSize, c.envelope_size);
        assert.deepEqual(header.keyIds.map(toHex), c.recipients.map((r) => r.key_id_hex));
      });
    }

    test('every invalid vector is refused with the expected error', async () => {
      assert.equal(invalid.vectors.length, 22);
      for (const v of invalid.vectors) {
        const data = readBytes(v.envelope_file);
        assert.equal(data.length, v.envelope_size, v.name);
        await rejectsNamed(env.open(data, fromHex(v.open_with.secret_key_hex), { backend }), v.open_error);
        assert.equal(v.open_error, v.expected_error);
        if (v.expected_by === 'inspect') {
          assert.throws(() => env.inspect(data), (err) => err.name === v.expected_error, v.name);
        } else {
          assert.doesNotThrow(() => env.inspect(data), v.name);
        }
      }
    });
  });
}

describe('both backends put the same bytes on the wire', () => {
  for (const size of [0, 1, 65527, 65528, 65529, 131064, 131065, 300 * 1024 + 7]) {
    test(`${size} bytes to three recipients`, async () => {
      const content = webcrypto.getRandomValues(new Uint8Array(size > 65536 ? 65536 : size));
      const plaintext = new Uint8Array(size);
      for (let at = 0; at < size; at += content.length) plaintext.set(content.subarray(0, size - at), at);
      const recipients = vectors.cases[2].recipients.map((r) => fromHex(r.public_key_hex));
      const randomness = toHex(webcrypto.getRandomValues(new Uint8Array(32 * 4)));
      const a = await env.seal(plaintext, recipients, 'browser', { random: replay(randomness), backend: BACKENDS.webcrypto });
      const b = await env.seal(plaintext, recipients, 'browser', { random: replay(randomness), backend: BACKENDS.noble });
      assert.ok(Buffer.from(a).equals(Buffer.from(b)));
      assert.equal(a.length, env.envelopeSize(3, env.paddedSize(size)));
      // Each opens the other's envelope (they are the same bytes, but through the other cipher).
      const sk = fromHex(vectors.cases[2].recipients[2].secret_key_hex);
      assert.ok(Buffer.from(await env.open(a, sk, { backend: BACKENDS.noble })).equals(Buffer.from(plaintext)));
      assert.ok(Buffer.from(await env.open(b, [sk], { backend: BACKENDS.webcrypto })).equals(Buffer.from(plaintext)));
      // The default randomness gives a different envelope every time.
      const c = await env.seal(plaintext, recipients, 'browser', { backend: BACKENDS.webcrypto });
      assert.ok(!Buffer.from(c).equals(Buffer.from(a)));
      assert.ok(Buffer.from(await env.open(c, sk, { backend: BACKENDS.webcrypto })).equals(Buffer.from(plaintext)));
    });
  }
});

describe('streaming seal (sealPieces)', () => {
  test('gives the same bytes as seal for every case, in odd-sized pieces', async () => {
    for (const c of vectors.cases) {
      const plaintext = plaintextOf(c);
      const pieces = [];
      for (let at = 0, step = 1; at < plaintext.length; at += step, step = step * 7 + 3) {
        pieces.push(plaintext.subarray(at, Math.min(plaintext.length, at + step)));
      }
      async function* source() {
        yield* pieces;
      }
      const out = [];
      const recipients = c.recipients.map((r) => fromHex(r.public_key_hex));
      const options = { random: replay(c.randomness_hex), backend: BACKENDS.webcrypto };
      for await (const part of env.sealPieces(plaintext.length, recipients, c.path, source(), options)) {
        out.push(part);
      }
      assert.ok(Buffer.from(concat(...out)).equals(Buffer.from(readBytes(c.envelope_file))), c.name);
    }
  });

  test('refuses a source longer or shorter than declared', async () => {
    const pk = [fromHex(vectors.cases[0].recipients[0].public_key_hex)];
    const drain = async (size, pieces) => {
      for await (const _ of env.sealPieces(size, pk, 'browser', pieces, { backend: nobleBackend }));
    };
    await rejectsNamed(drain(10, [new Uint8Array(11)]), 'SizeMismatch');
    await rejectsNamed(drain(70000, [new Uint8Array(69999)]), 'SizeMismatch');
    await rejectsNamed(drain(5, []), 'SizeMismatch');
  });
});

describe('sealing refuses bad requests before drawing randomness', () => {
  const good = fromHex(vectors.cases[0].recipients[0].public_key_hex);
  const other = fromHex(vectors.cases[2].recipients[1].public_key_hex);
  const seal = (recipients, path = 'browser', data = new Uint8Array(3)) =>
    env.seal(data, recipients, path, { random: noRandom, backend: nobleBackend });

  test('recipient count', async () => {
    await rejectsNamed(seal([]), 'InvalidRecipientKey');
    const many = Array.from({ length: 17 }, (_, i) => env.publicKeyOf(new Uint8Array(32).fill(i + 1)));
    await rejectsNamed(seal(many), 'InvalidRecipientKey');
    await rejectsNamed(seal('not a list'), 'InvalidRecipientKey');
  });

  test('wrong length, non-canonical, low order, duplicate', async () => {
    await rejectsNamed(seal([good.subarray(0, 31)]), 'InvalidRecipientKey');
    await rejectsNamed(seal([concat(good, new Uint8Array(1))]), 'InvalidRecipientKey');
    await rejectsNamed(seal(['a string']), 'InvalidRecipientKey');
    const withBit255 = good.slice();
    withBit255[31] |= 0x80;
    await assert.rejects(seal([withBit255]), /not in canonical form/);
    for (const u of [P, P + 1n, P + 5n, 2n ** 255n - 1n]) {
      await assert.rejects(seal([le(u)]), /not in canonical form/, `u = ${u}`);
    }
    const lowOrder = [
      0n,
      1n,
      P - 1n,
      325606250916557431795983626356110631294008115727848805560023387167927233504n,
      39382357235489614581723060781553021112529911719440698176882885853963445705823n,
    ];
    for (const u of lowOrder) await assert.rejects(seal([le(u)]), /low-order point/, `u = ${u}`);
    await assert.rejects(seal([good, other, good]), /listed twice/);
    // The checks run in order: the first bad key decides the message.
    await assert.rejects(seal([le(1n), le(P)]), /low-order/);
  });

  test('the low-order list gives what X25519 with a clamped scalar gives, for canonical keys', () => {
    const seven = new Uint8Array(32).fill(7);
    const candidates = [];
    for (let u = 0n; u < 600n; u++) candidates.push(le(u), le(P - 1n - u));
    for (let i = 0; i < 300; i++) candidates.push(webcrypto.getRandomValues(new Uint8Array(32)).map((b, j) => (j === 31 ? b & 0x7f : b)));
    const order8 = [
      325606250916557431795983626356110631294008115727848805560023387167927233504n,
      39382357235489614581723060781553021112529911719440698176882885853963445705823n,
    ];
    for (const u of order8) candidates.push(le(u), le(u + 1n), le(u - 1n));
    let lowOrder = 0;
    for (const pk of candidates) {
      let refused = null;
      try {
        env.checkPublicKey(pk);
      } catch (err) {
        refused = err.message;
      }
      if (refused === 'the public key is not in canonical form') continue;
      const zero = isZero(nacl.scalarMult(seven, pk));
      assert.equal(refused === 'the public key is a low-order point', zero, toHex(pk));
      if (zero) lowOrder++;
    }
    assert.equal(lowOrder, 5);
  });

  test('path and size', async () => {
    for (const path of ['nope', 0, 4, '1', null]) await assert.rejects(seal([good], path), RangeError);
    await assert.rejects(env.seal(new Uint8Array(1), [good], undefined, { random: noRandom }), RangeError);
    await assert.rejects(env.createSealer(-1, [good], 'desk', { random: noRandom }), RangeError);
    await assert.rejects(env.createSealer(2 ** 40 - 7, [good], 'desk', { random: noRandom }), RangeError);
    await assert.rejects(env.seal('text', [good], 'desk'), TypeError);
  });

  test('a random source that returns the wrong length is refused', async () => {
    await assert.rejects(env.seal(new Uint8Array(1), [good], 'desk', { random: (n) => new Uint8Array(n - 1), backend: nobleBackend }), /random source/);
  });
});

describe('opening: tampering, truncation and faulty sealers', () => {
  const c = vectors.cases.find((x) => x.name === 'many_chunks');
  const data = readBytes(c.envelope_file);
  const alice = fromHex(c.recipients[0].secret_key_hex);
  const backend = BACKENDS.webcrypto;

  test('truncation at every chunk boundary and inside every chunk', async () => {
    const stride = env.CHUNK_SIZE + env.TAG_SIZE;
    for (let i = 0; i < c.chunk_count; i++) {
      for (const cut of [c.header_size + i * stride, c.header_size + i * stride + 100]) {
        await rejectsNamed(env.open(data.subarray(0, cut), alice, { backend }), 'TruncatedEnvelope');
      }
    }
    for (let cut = 0; cut < c.header_size; cut += 7) {
      await assert.rejects(env.open(data.subarray(0, cut), alice, { backend }), (e) =>
        ['NotAnEnvelope', 'TruncatedEnvelope'].includes(e.name),
      );
    }
  });

  test('a flipped byte anywhere is refused, never opened', async () => {
    const positions = [0, 1, 5, 6, 7, 8, 15, 16, 31, 32, 63, 64, 100, 111, 112, 150, 207, 208, 239, 240, 241];
    for (let at = 300; at < data.length; at += 9973) positions.push(at);
    positions.push(data.length - 1);
    for (const at of positions) {
      const bad = data.slice();
      bad[at] ^= 0x01;
      await assert.rejects(env.open(bad, alice, { backend }), (e) => e instanceof env.EnvelopeError, `byte ${at}`);
    }
  });

  test('a zero shared secret (low-order ephemeral key) is an authentication failure', async () => {
    const empty = vectors.cases[0];
    const bad = readBytes(empty.envelope_file).slice();
    bad.fill(0, 32, 64); // the ephemeral public key of stanza 0 becomes u = 0
    await assert.rejects(env.open(bad, fromHex(empty.recipients[0].secret_key_hex), { backend }), (e) =>
      e.name === 'AuthenticationFailed' && /stanza/.test(e.message),
    );
  });

  test('no key, an empty key list, or a wrong key: NoMatchingKey; a bad key length: TypeError', async () => {
    await rejectsNamed(env.open(data, [], { backend }), 'NoMatchingKey');
    await rejectsNamed(env.open(data, new Uint8Array(32).fill(9), { backend }), 'NoMatchingKey');
    await assert.rejects(env.open(data, new Uint8Array(31), { backend }), TypeError);
    // A later key in the list is found.
    const bob = fromHex(c.recipients[1].secret_key_hex);
    const opened = await env.open(data, [new Uint8Array(32).fill(9), bob], { backend });
    assert.equal(opened.length, c.plaintext_size);
  });

  // An envelope whose chunks are encrypted properly but whose padded plaintext is wrong.
  async function faulty(firstChunk) {
    const pk = fromHex(vectors.cases[0].recipients[0].public_key_hex);
    const sealer = await env.createSealer(0, [pk], 'desk', { backend });
    return concat(sealer.header, await sealer.sealChunk(0, firstChunk));
  }
  const sk = fromHex(vectors.cases[0].recipients[0].secret_key_hex);

  test('a declared length that does not fit the padding is malformed (even 2^64 - 1)', async () => {
    for (const prefix of ['ffffffffffffffff', '0000010000000000', '000000000000fff9', '0000000000010000']) {
      const chunk = new Uint8Array(65536);
      chunk.set(fromHex(prefix));
      await assert.rejects(env.open(await faulty(chunk), sk, { backend }), (e) =>
        e.name === 'MalformedEnvelope' && /content size/.test(e.message),
      );
    }
  });

  test('non-zero padding is malformed', async () => {
    const chunk = new Uint8Array(65536);
    chunk[8] = 0x41; // length 0 but a byte of content
    await assert.rejects(env.open(await faulty(chunk), sk, { backend }), (e) =>
      e.name === 'MalformedEnvelope' && /padding is not zero/.test(e.message),
    );
    chunk.fill(0, 8);
    chunk[65535] = 1;
    await rejectsNamed(env.open(await faulty(chunk), sk, { backend }), 'MalformedEnvelope');
    chunk[65535] = 0;
    assert.equal((await env.open(await faulty(chunk), sk, { backend })).length, 0);
  });

  test('header fields out of range', async () => {
    const base = readBytes(vectors.cases[0].envelope_file);
    const cases = [
      [5, 0, 'MalformedEnvelope', /sealing path/],
      [5, 4, 'MalformedEnvelope', /sealing path/],
      [7, 15, 'MalformedEnvelope', /chunk size/],
      [6, 0, 'MalformedEnvelope', /recipients declared/],
      [0, 2, 'UnsupportedVersion', /version 2/],
      [1, 0x56, 'NotAnEnvelope', /first bytes/],
    ];
    for (const [at, value, name, pattern] of cases) {
      const bad = base.slice();
      bad[at] = value;
      assert.throws(() => env.inspect(bad), (e) => e.name === name && pattern.test(e.message));
      await rejectsNamed(env.open(bad, sk, { backend }), name);
    }
    for (const padded of ['0000000000010001', '0000000000008000', '0000010000000001', 'ffffffffffffffff']) {
      const bad = base.slice();
      bad.set(fromHex(padded), 8);
      assert.throws(() => env.inspect(bad), /not a valid padded size/);
    }
    const two = base.slice();
    two.set(fromHex('0000010000000000'), 8); // 2^40 is valid, so the length check fails instead
    assert.throws(() => env.inspect(two), (e) => e.name === 'TruncatedEnvelope');
  });

  test('short inputs: NotAnEnvelope or TruncatedEnvelope as §11.2 step 1 says', () => {
    const cases = [
      ['', 'NotAnEnvelope'],
      ['01', 'NotAnEnvelope'],
      ['0155', 'TruncatedEnvelope'],
      ['07554e', 'TruncatedEnvelope'],
      ['01554e5250', 'TruncatedEnvelope'],
      ['01554e525001', 'TruncatedEnvelope'],
      ['0156', 'NotAnEnvelope'],
      ['01554e5251', 'NotAnEnvelope'],
    ];
    for (const [hex, name] of cases) {
      assert.throws(() => env.inspect(fromHex(hex)), (e) => e.name === name, hex);
    }
  });

  test('errors carry a hint and the Python class names', () => {
    const e = new env.TruncatedEnvelope('x');
    assert.equal(e.name, 'TruncatedEnvelope');
    assert.ok(e instanceof env.EnvelopeError && e instanceof Error);
    assert.match(e.hint, /incomplete/);
    assert.equal(new env.InvalidRecipientKey('y').hint, 'Use the public key exactly as `portal-desk keygen` printed it.');
  });
});
