// attachment.js: the streaming sealer of a File, opened with envelope.open and
// decoded by hand; re-sealing any range gives the same bytes; the SHA-256 is right.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import { createHash, webcrypto } from 'node:crypto';
import nacl from 'tweetnacl';
import { toHex } from '../src/bytes.js';
import { webCryptoBackend } from '../src/backend-webcrypto.js';
import { nobleBackend } from '../src/backend-noble.js';
import * as env from '../src/envelope.js';
import * as att from '../src/attachment.js';

const BACKENDS = { webcrypto: webCryptoBackend(webcrypto.subtle), noble: nobleBackend };
const STRIDE = env.CHUNK_SIZE + env.TAG_SIZE;
const keys = [nacl.box.keyPair(), nacl.box.keyPair()];
const recipients = keys.map((k) => k.publicKey);

function fileBytes(size, seed = 1) {
  const out = new Uint8Array(size);
  let x = seed * 2654435761;
  for (let i = 0; i < size; i++) {
    x = (x * 1103515245 + 12345) >>> 0;
    out[i] = x >>> 24;
  }
  return out;
}

/** A File whose reads are counted (bytes and calls), to prove nothing is read whole. */
function countingFile(bytes, name = 'photo.jpg', type = 'image/jpeg') {
  const file = new File([bytes], name, { type });
  const stats = { calls: 0, bytes: 0, largest: 0 };
  const slice = file.slice.bind(file);
  file.slice = (a, b) => {
    const part = slice(a, b);
    stats.calls += 1;
    stats.bytes += part.size;
    stats.largest = Math.max(stats.largest, part.size);
    return part;
  };
  return { file, stats };
}

/** The whole envelope, asked for in requests of at most `step` bytes that end on chunk boundaries. */
async function sealAll(sealer, step) {
  const parts = [];
  for (let at = 0, end; at < sealer.totalSize; at = end) {
    end = sealer.rangeEnd(at, step);
    parts.push(await sealer.bytes(at, end - at));
  }
  const out = new Uint8Array(sealer.totalSize);
  parts.reduce((at, p) => (out.set(p, at), at + p.length), 0);
  return out;
}

function decode(content) {
  assert.equal(new TextDecoder().decode(content.subarray(0, 8)), 'UNRPFILE');
  const view = new DataView(content.buffer, content.byteOffset);
  const size = view.getUint32(8) * 2 ** 32 + view.getUint32(12);
  const file = content.subarray(16, 16 + size);
  const meta = JSON.parse(new TextDecoder().decode(content.subarray(16 + size)));
  return { size, file, meta, metaText: new TextDecoder().decode(content.subarray(16 + size)) };
}

const GROUP = 16 * STRIDE;
const SIZES = [0, 1, 65535 - 16, 65536, 3 * 65536 + 17, 20 * 65536 + 5];

for (const [name, backend] of Object.entries(BACKENDS)) {
  describe(`the attachment sealer (${name})`, () => {
    for (const size of SIZES) {
      test(`${size} bytes: opens, decodes, hash and metadata right`, async () => {
        const bytes = fileBytes(size, size + 3);
        const { file, stats } = countingFile(bytes, 'évidence 📷.jpg');
        const sealer = await att.createAttachmentSealer(file, recipients, { backend });
        const sealed = await sealAll(sealer, GROUP);
        assert.equal(sealed.length, sealer.totalSize);
        const header = env.inspect(sealed);
        assert.equal(header.path, 'browser');
        for (const k of keys) {
          const content = await env.open(sealed, k.secretKey, { backend });
          assert.equal(content.length, sealer.contentSize);
          const got = decode(content);
          assert.equal(got.size, size);
          assert.deepEqual(got.file, bytes);
          const digest = createHash('sha256').update(bytes).digest('hex');
          assert.deepEqual(Object.keys(got.meta), ['id', 'media_type', 'name', 'sha256', 'size', 'type', 'version']);
          assert.equal(got.meta.sha256, digest);
          assert.equal(got.meta.name, 'évidence 📷.jpg');
          assert.equal(got.meta.media_type, 'image/jpeg');
          assert.equal(got.meta.size, size);
          assert.equal(got.meta.type, 'reprisal-attachment');
          assert.equal(got.meta.version, 1);
          assert.match(got.meta.id, /^[0-9a-f]{32}$/);
          assert.deepEqual(sealer.metadata(), {
            id: got.meta.id, media_type: 'image/jpeg', name: 'évidence 📷.jpg', sha256: digest, size,
          });
        }
        // Each file byte read once, never more than one group's worth at a time.
        assert.equal(stats.bytes, size);
        assert.ok(stats.largest <= 16 * env.CHUNK_SIZE);
      });
    }
  });
}

describe('resuming', () => {
  test('any range sealed again gives identical bytes, without reading the hash twice', async () => {
    const bytes = fileBytes(40 * 65536 + 999, 7);
    const { file, stats } = countingFile(bytes);
    const sealer = await att.createAttachmentSealer(file, recipients);
    const whole = await sealAll(sealer, GROUP);
    const read = stats.bytes;
    for (const [offset, length] of [[0, 10], [5, 300000], [sealer.headerSize, STRIDE], [123457, GROUP],
      [sealer.totalSize - 70000, 70000], [sealer.headerSize + 3 * STRIDE - 1, 2]]) {
      const again = await sealer.bytes(offset, length);
      assert.deepEqual(again, whole.subarray(offset, offset + length), `range ${offset} +${length}`);
    }
    const digest = createHash('sha256').update(bytes).digest('hex');
    assert.equal(sealer.metadata().sha256, digest);
    assert.ok(stats.bytes > read); // the file was read again, but the hash did not move
  });

  test('a resume from the middle of a first pass continues the hash exactly once', async () => {
    const bytes = fileBytes(70 * 65536 + 1, 9);
    const { file } = countingFile(bytes);
    const sealer = await att.createAttachmentSealer(file, recipients);
    const parts = [];
    // Forward, then back to an earlier (even unaligned) offset, as after a 409, and on.
    let at = 0;
    for (const back of [0, 70000, 0, GROUP - 1]) {
      parts.push([at, await sealer.bytes(at, GROUP)]);
      at += GROUP - back;
    }
    for (; at < sealer.totalSize; at += GROUP) parts.push([at, await sealer.bytes(at, GROUP)]);
    const sealed = new Uint8Array(sealer.totalSize);
    for (const [offset, part] of parts) sealed.set(part, offset);
    const content = await env.open(sealed, keys[0].secretKey);
    const got = decode(content);
    assert.deepEqual(got.file, bytes);
    assert.equal(got.meta.sha256, createHash('sha256').update(bytes).digest('hex'));
  });

  test('chunks must be sealed in order the first time', async () => {
    const sealer = await att.createAttachmentSealer(new File([fileBytes(5 * 65536)], 'a'), recipients);
    await assert.rejects(sealer.bytes(sealer.headerSize + 2 * STRIDE, 10), RangeError);
    await sealer.bytes(0, sealer.headerSize + STRIDE);
    await assert.rejects(sealer.bytes(sealer.headerSize + 2 * STRIDE, 10), RangeError);
    assert.throws(() => sealer.metadata(), /not sealed yet/);
    await assert.rejects(sealer.bytes(sealer.totalSize, 10), RangeError);
    await assert.rejects(sealer.bytes(-1, 10), RangeError);
  });

  test('a file that gives other bytes the second time is refused before anything is handed out', async () => {
    const bytes = fileBytes(3 * 65536, 4);
    const file = new File([bytes], 'changing.bin');
    let second = false;
    const slice = file.slice.bind(file);
    file.slice = (a, b) => {
      if (!second) return slice(a, b);
      const changed = new Uint8Array(bytes.subarray(a, b));
      changed[0] ^= 1;
      return new Blob([changed]);
    };
    const sealer = await att.createAttachmentSealer(file, recipients);
    await sealAll(sealer, GROUP);
    second = true;
    await assert.rejects(sealer.bytes(0, GROUP), (err) => err.name === 'SizeMismatch');
  });

  test('a file shorter than it said is refused', async () => {
    const file = new File([fileBytes(100000)], 'short.bin');
    const slice = file.slice.bind(file);
    file.slice = (a, b) => slice(a, Math.min(b, 5000));
    const sealer = await att.createAttachmentSealer(file, recipients);
    await assert.rejects(sealer.bytes(0, GROUP), (err) => err.name === 'SizeMismatch');
  });
});

describe('metadata', () => {
  test('names are cut to 1000 code points, lone surrogates replaced, empty names named; odd types dropped', () => {
    const rnd = (n) => new Uint8Array(n).fill(0xab);
    const long = att.describeFile({ size: 3, name: '😀'.repeat(1200), type: 'x'.repeat(256) }, rnd);
    assert.equal(Array.from(long.name).length, 1000);
    assert.equal(long.media_type, '');
    assert.equal(long.id, 'ab'.repeat(16));
    assert.equal(att.describeFile({ size: 3, name: 'a', type: 'é'.repeat(255) }, rnd).media_type, 'é'.repeat(255));
    const odd = att.describeFile({ size: 0, name: 'a\ud800b\udc00', type: 'x/\udc00' }, rnd);
    assert.equal(odd.name, 'a\ufffdb\ufffd');
    assert.equal(odd.media_type, '');
    assert.equal(att.describeFile({ size: 0, name: '', type: '' }, rnd).name, 'unnamed');
  });

  test('the JSON is compact, sorted and unescaped like Python json.dumps', () => {
    const info = { id: '0'.repeat(32), media_type: 'text/plain', name: '../ß\u0001"\n', size: 12 };
    const text = new TextDecoder().decode(att.metadataBytes(info, 'f'.repeat(64)));
    assert.equal(
      text,
      '{"id":"00000000000000000000000000000000","media_type":"text/plain","name":"../ß\\u0001\\"\\n",' +
        `"sha256":"${'f'.repeat(64)}","size":12,"type":"reprisal-attachment","version":1}`,
    );
  });

  test('the envelope size is known before any byte is read', async () => {
    const file = new File([fileBytes(1000)], 'n.txt', { type: 'text/plain' });
    file.slice = () => {
      throw new Error('read');
    };
    const sealer = await att.createAttachmentSealer(file, recipients);
    const meta = att.metadataBytes(sealer.info, '0'.repeat(64)).length;
    assert.equal(sealer.contentSize, 16 + 1000 + meta);
    assert.equal(sealer.totalSize, env.envelopeSize(2, env.paddedSize(sealer.contentSize)));
    assert.equal(toHex((await sealer.bytes(0, 16)).subarray(1, 5)), toHex(env.MAGIC));
  });
});
