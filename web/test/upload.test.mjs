// upload.js against a fake server (the protocol of docs/UPLOADS.md, in memory)
// with the real attachment sealer as its source: dropped connections, lost
// answers, 409s, 5xx, restarts that lose uncommitted bytes, pause, cancel.

import assert from 'node:assert/strict';
import { describe, test } from 'node:test';
import nacl from 'tweetnacl';
import * as env from '../src/envelope.js';
import { createAttachmentSealer } from '../src/attachment.js';
import { UploadCancelled, UploadFailed, createUpload } from '../src/upload.js';

const STRIDE = env.CHUNK_SIZE + env.TAG_SIZE;
const MAX_CHUNK = 16 * STRIDE;
const key = nacl.box.keyPair();

function json(status, body) {
  return { status, json: async () => body };
}

/**
 * The server side of the protocol, in memory. `faults` is a list of functions
 * (request) => undefined | 'network' | 'lost' | 'hang' | Response-like, consulted
 * for each request in turn: 'network' fails before the server sees it,
 * 'lost' lets the server act and then drops the answer, 'hang' never answers.
 */
class FakeServer {
  constructor(faults = []) {
    this.uploads = new Map();
    this.faults = faults;
    this.log = [];
    this.n = 0;
  }

  fetch = async (url, init) => {
    const request = { url, method: init.method, headers: init.headers, body: init.body };
    this.log.push({ method: init.method, offset: init.headers['Upload-Offset'], size: init.body ? init.body.length : 0 });
    assert.ok(init.headers['X-CSRFToken'], 'every request carries the CSRF token');
    const fault = this.faults.length ? this.faults.shift()(request, this) : undefined;
    if (init.signal && init.signal.aborted) throw new DOMException('aborted', 'AbortError');
    if (fault === 'network') throw new TypeError('Failed to fetch');
    if (fault === 'hang') {
      // Never answered: only the client's own timeout ends it.
      return new Promise((resolve, reject) => {
        init.signal.addEventListener('abort', () => reject(new DOMException('aborted', 'AbortError')));
      });
    }
    if (fault && fault !== 'lost') return fault;
    const answer = this.handle(request);
    if (fault === 'lost') throw new TypeError('Failed to fetch');
    return answer;
  };

  handle({ url, method, headers, body }) {
    if (method === 'POST') {
      const length = Number(headers['Upload-Length']);
      if (length > 50 * 1048576) return json(413, { error: 'The file is too large.' });
      const token = (this.n++).toString(16).padStart(64, '0');
      this.uploads.set(token, { length, data: new Uint8Array(length), offset: 0 });
      return json(201, { token, offset: 0, length, max_chunk: MAX_CHUNK });
    }
    const token = url.split('/').pop();
    const up = this.uploads.get(token);
    if (!up) return json(404, { error: 'No such upload.' });
    const complete = up.offset === up.length;
    if (method === 'GET') return json(200, { offset: up.offset, length: up.length, complete });
    if (method === 'DELETE') {
      this.uploads.delete(token);
      return { status: 204, json: async () => ({}) };
    }
    const offset = Number(headers['Upload-Offset']);
    if (offset !== up.offset) return json(409, { error: 'Wrong offset.', offset: up.offset });
    if (!body.length) return json(400, { error: 'Empty.' });
    if (body.length > MAX_CHUNK || offset + body.length > up.length) return json(413, { error: 'Too long.' });
    up.data.set(body, offset);
    up.offset += body.length;
    return json(200, up.offset === up.length ? { offset: up.offset, complete: true } : { offset: up.offset });
  }

  /** A restart that lost the last commit (a server that fsynced but recorded nothing). */
  rollBack(token, bytes) {
    const up = this.uploads.get(token);
    up.offset = Math.max(0, up.offset - bytes);
  }
}

function fileOf(chunks, extra = 123) {
  const data = new Uint8Array(chunks * env.CHUNK_SIZE + extra);
  for (let i = 0; i < data.length; i++) data[i] = (i * 31 + (i >> 11)) & 255;
  return new File([data], 'recording.ogg', { type: 'audio/ogg' });
}

async function setup(faults, chunks = 50, extra = {}) {
  const file = fileOf(chunks);
  const sealer = await createAttachmentSealer(file, [key.publicKey]);
  const server = new FakeServer(faults);
  const events = [];
  const sleeps = [];
  const upload = createUpload(sealer, {
    fetch: server.fetch,
    csrf: 'csrf-token',
    sleep: async (ms) => sleeps.push(ms),
    onConnection: (up) => events.push(up ? 'back' : 'lost'),
    onProgress: ({ offset, length }) => events.push(`${offset}/${length}`),
    ...extra,
  });
  return { file, sealer, server, upload, events, sleeps };
}

async function assertStored(ctx, token) {
  const up = ctx.server.uploads.get(token);
  assert.equal(up.offset, ctx.sealer.totalSize);
  const content = await env.open(up.data, key.secretKey);
  const expected = new Uint8Array(await ctx.file.arrayBuffer());
  assert.deepEqual(content.subarray(16, 16 + expected.length), expected);
  const meta = JSON.parse(new TextDecoder().decode(content.subarray(16 + expected.length)));
  assert.equal(meta.sha256, ctx.sealer.metadata().sha256);
}

const at = (n, f) => Array.from({ length: n }, () => () => undefined).concat([f]);

describe('the upload client', () => {
  test('a clean upload: aligned chunks of at most 16, nothing sent twice', async () => {
    const ctx = await setup([]);
    const token = await ctx.upload.run();
    await assertStored(ctx, token);
    const patches = ctx.server.log.filter((r) => r.method === 'PATCH');
    assert.ok(patches.length >= 4);
    for (const p of patches.slice(0, -1)) {
      assert.ok(p.size <= MAX_CHUNK);
      assert.equal((Number(p.offset) + p.size - ctx.sealer.headerSize) % STRIDE, 0, 'ends on a chunk boundary');
    }
    assert.equal(ctx.upload.stats.bytesSent, ctx.sealer.totalSize);
    assert.deepEqual(ctx.sleeps, []);
    assert.ok(!ctx.events.includes('lost'));
  });

  test('network errors: the offset is asked for, with growing waits, and the upload goes on', async () => {
    const faults = [...at(2, () => 'network'), () => 'network', () => 'network', ...at(1, () => 'lost'), () => 'network'];
    const ctx = await setup(faults);
    const token = await ctx.upload.run();
    await assertStored(ctx, token);
    assert.deepEqual(ctx.sleeps.slice(0, 3), [1000, 2000, 4000]);
    assert.ok(ctx.events.includes('lost') && ctx.events.lastIndexOf('back') > ctx.events.indexOf('lost'));
    // The lost answer cost nothing: the server had the chunk; at most one group went twice per drop.
    const extra = ctx.upload.stats.bytesSent - ctx.sealer.totalSize;
    assert.ok(extra <= 3 * MAX_CHUNK, `${extra} bytes sent twice`);
    const gets = ctx.server.log.filter((r) => r.method === 'GET');
    assert.ok(gets.length >= 2);
  });

  test('5xx and a restart that lost a commit: carries on from the offset the server gives', async () => {
    const faults = [
      ...at(2, () => json(502, {})),
      ...at(1, (req, server) => {
        server.rollBack(req.url.split('/').pop(), MAX_CHUNK + 100); // unaligned: mid-chunk resume
        return 'network';
      }),
    ];
    const ctx = await setup(faults);
    const token = await ctx.upload.run();
    await assertStored(ctx, token);
    const offsets = ctx.server.log.filter((r) => r.method === 'PATCH').map((r) => Number(r.offset));
    assert.ok(offsets.some((o) => (o - ctx.sealer.headerSize) % STRIDE !== 0), 'resumed mid-chunk');
  });

  test('a 409 (offset mismatch): the committed offset is asked for at once', async () => {
    const faults = at(2, (req, server) => {
      server.rollBack(req.url.split('/').pop(), 1000);
      return undefined; // the server now answers 409 to this request
    });
    const ctx = await setup(faults);
    const token = await ctx.upload.run();
    await assertStored(ctx, token);
    assert.ok(ctx.server.log.some((r) => r.method === 'GET'));
    assert.deepEqual(ctx.sleeps, []);
    assert.ok(!ctx.events.includes('lost'), 'a 409 is not a lost connection');
  });

  test('an expired upload (404) starts again from zero with the same ciphertext', async () => {
    const faults = at(3, (req, server) => {
      server.uploads.delete(req.url.split('/').pop());
      return undefined;
    });
    const ctx = await setup(faults);
    const token = await ctx.upload.run();
    await assertStored(ctx, token);
    assert.equal(ctx.upload.stats.restarts, 1);
    assert.equal(ctx.server.uploads.size, 1);
  });

  test('final refusals carry the server message; a server claiming unsent bytes is refused', async () => {
    const big = await setup([() => json(507, { error: 'The portal is out of space.' })]);
    await assert.rejects(big.upload.run(), (err) => err instanceof UploadFailed && err.status === 507 &&
      err.message === 'The portal is out of space.');
    const lying = await setup(at(1, () => json(200, { offset: 10 * MAX_CHUNK })));
    await assert.rejects(lying.upload.run(), UploadFailed);
    const bad = await setup(at(1, () => json(400, {})));
    await assert.rejects(bad.upload.run(), (err) => err.status === 400 && err.serverMessage === null);
  });

  test('pause aborts the request in flight; resume asks for the offset and finishes', async () => {
    let upload;
    let reached;
    const pausedNow = new Promise((resolve) => (reached = resolve));
    const faults = at(2, () => {
      upload.pause();
      reached();
      return undefined; // the signal is aborted: the request fails as the browser's would
    });
    const ctx = await setup(faults);
    upload = ctx.upload;
    const done = upload.run();
    await pausedNow;
    assert.ok(upload.state.paused);
    const before = ctx.server.log.length;
    for (let i = 0; i < 20; i++) await new Promise((r) => setImmediate(r));
    assert.equal(ctx.server.log.length, before, 'nothing is sent while paused');
    upload.resume();
    const token = await done;
    await assertStored(ctx, token);
    assert.equal(ctx.server.log[before].method, 'GET');
    assert.ok(!ctx.events.includes('lost'));
  });

  test('a request that times out is dropped, and the next ones are smaller', async () => {
    const ctx = await setup(at(2, () => 'hang'), 50, { timeout: 200 });
    const token = await ctx.upload.run();
    await assertStored(ctx, token);
    const sizes = ctx.server.log.filter((r) => r.method === 'PATCH').map((r) => r.size);
    assert.ok(sizes[1] > MAX_CHUNK / 2, String(sizes));
    assert.ok(sizes.slice(2, -1).every((n) => n <= MAX_CHUNK / 2), String(sizes));
    assert.ok(ctx.events.includes('lost'));
  });

  test('cancel stops the upload and deletes it on the server', async () => {
    let upload;
    const ctx = await setup(at(2, () => {
      upload.cancel();
      return undefined;
    }));
    upload = ctx.upload;
    await assert.rejects(upload.run(), UploadCancelled);
    await new Promise((r) => setTimeout(r, 10));
    assert.equal(ctx.server.uploads.size, 0);
    assert.equal(ctx.server.log.at(-1).method, 'DELETE');
  });
});
