#!/usr/bin/env node
// Command-line access to the browser modules, for tests/test_js_interop.py
// (which proves that Python and JS read each other's envelopes and agree on
// receipts and report documents). Not shipped to browsers.
//
//   node web/tools/interop.mjs seal [--backend webcrypto|noble] --path PATH --to BASE64 [--to ...] IN OUT
//   node web/tools/interop.mjs open [--backend webcrypto|noble] --secret-key-hex HEX [...] IN OUT
//   node web/tools/interop.mjs open-many [--backend ...] < [{input, output, secret_key_hex}]
//   node web/tools/interop.mjs receipts < request.json   (see `receipts` below)
//   node web/tools/interop.mjs check-keys < ["hex", ...]  (null, or {error, name}, for each)
//   node web/tools/interop.mjs fingerprint BASE64 ...
//   node web/tools/interop.mjs report < forms.json       (form stand-ins, see `report` below)
//   node web/tools/interop.mjs seal-attachment [--backend ...] --to BASE64 [...] [--step N] IN OUT < {name, type}
//        (attachment.js over IN read with File.slice semantics, in requests of at most N bytes
//         ending on chunk boundaries, each earlier range sealed again and compared; prints the metadata)
//   node web/tools/interop.mjs open-attachment [--backend ...] --secret-key-hex HEX IN OUT
//        (opens IN, writes the file bytes to OUT, prints the metadata text)
//
// Errors: exit 1 with "interop: <ErrorName>: <message>" on stderr.

import { readFileSync, writeFileSync } from 'node:fs';
import { webcrypto } from 'node:crypto';
import { fromBase64, fromHex, toHex } from '../src/bytes.js';
import { webCryptoBackend } from '../src/backend-webcrypto.js';
import { nobleBackend } from '../src/backend-noble.js';
import * as envelope from '../src/envelope.js';
import * as receipt from '../src/receipt.js';
import { fieldsFromForm, reportDocument } from '../src/report.js';
import { createAttachmentSealer } from '../src/attachment.js';
import { openAsBlob } from 'node:fs';

const BACKENDS = { webcrypto: webCryptoBackend(webcrypto.subtle), noble: nobleBackend };

function parse(argv) {
  const opts = { to: [], keys: [], backend: 'webcrypto', files: [] };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a === '--to') opts.to.push(fromBase64(argv[++i]));
    else if (a === '--secret-key-hex') opts.keys.push(fromHex(argv[++i]));
    else if (a === '--backend') opts.backend = argv[++i];
    else if (a === '--path') opts.path = argv[++i];
    else if (a === '--step') opts.step = Number(argv[++i]);
    else opts.files.push(a);
  }
  if (!BACKENDS[opts.backend]) throw new Error(`unknown backend ${opts.backend}`);
  return opts;
}

function readBytes(path) {
  const buf = readFileSync(path);
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.length);
}

function readStdinJson() {
  return JSON.parse(readFileSync(0, 'utf8'));
}

function attempt(fn) {
  try {
    return fn();
  } catch (err) {
    return { error: err.message, name: err.name };
  }
}

// {"derive": [text], "generate": n, "normalize": [text]} ->
// {"derive": [{digits, lookup_token_hex, reply_secret_hex, reply_public_key_hex} | {error}],
//  "generated": [receipt], "normalize": [{digits} | {error}]}
async function receipts(request, backend) {
  const derive = [];
  for (const text of request.derive || []) {
    const digits = attempt(() => receipt.normalize(text));
    if (typeof digits !== 'string') {
      derive.push(digits);
      continue;
    }
    derive.push({
      digits,
      lookup_token_hex: toHex(await receipt.lookupToken(text, backend)),
      reply_secret_hex: toHex(await receipt.replySecret(text, backend)),
      reply_public_key_hex: toHex(await receipt.replyPublicKey(text, backend)),
    });
  }
  const generated = Array.from({ length: request.generate || 0 }, () => receipt.generate());
  const normalize = (request.normalize || []).map((text) =>
    attempt(() => ({ digits: receipt.normalize(text) })),
  );
  return { derive, generated, normalize };
}

// Each of a list of {"elements": [{tag, name, type, value, checked, multiple, options}],
// "reply_public_key": b64} -> {"fields": ..., "document": ...}
function report(spec) {
  const elements = spec.elements.map((e) => ({
    tagName: String(e.tag || 'input').toUpperCase(),
    type: e.type || 'text',
    name: e.name,
    value: e.value === undefined ? '' : e.value,
    checked: Boolean(e.checked),
    disabled: Boolean(e.disabled),
    multiple: Boolean(e.multiple),
    options: e.options,
  }));
  const fields = fieldsFromForm({ elements });
  const doc = spec.reply_public_key ? reportDocument(fields, fromBase64(spec.reply_public_key)) : null;
  return { fields, document: doc, serialised: doc ? JSON.stringify(doc) : null };
}

// Seal IN as an attachment, going back over every range once (as a resumed
// upload would) and checking that it comes out byte for byte the same.
async function sealAttachment(opts, backend, described) {
  const [input, output] = opts.files;
  const blob = await openAsBlob(input); // read on demand, like a File
  const file = { size: blob.size, name: described.name, type: described.type, slice: (a, b) => blob.slice(a, b) };
  const sealer = await createAttachmentSealer(file, opts.to, { backend });
  const step = opts.step || 16 * (envelope.CHUNK_SIZE + envelope.TAG_SIZE);
  const parts = [];
  for (let at = 0, end; at < sealer.totalSize; at = end) {
    end = sealer.rangeEnd(at, step);
    const first = await sealer.bytes(at, end - at);
    const again = await sealer.bytes(at, end - at);
    if (Buffer.compare(Buffer.from(first), Buffer.from(again)) !== 0) throw new Error(`range ${at} differs`);
    parts.push(first);
  }
  writeFileSync(output, Buffer.concat(parts));
  return sealer.metadata();
}

async function openAttachment(opts, backend) {
  const [input, output] = opts.files;
  const content = await envelope.open(readBytes(input), opts.keys, { backend });
  const view = new DataView(content.buffer, content.byteOffset);
  const size = view.getUint32(8) * 2 ** 32 + view.getUint32(12);
  if (new TextDecoder().decode(content.subarray(0, 8)) !== 'UNRPFILE') throw new Error('not an attachment');
  writeFileSync(output, content.subarray(16, 16 + size));
  return new TextDecoder().decode(content.subarray(16 + size));
}

async function main(argv) {
  const [command, ...rest] = argv;
  const opts = parse(rest);
  const backend = BACKENDS[opts.backend];
  if (command === 'seal') {
    const [input, output] = opts.files;
    const sealed = await envelope.seal(readBytes(input), opts.to, opts.path, { backend });
    writeFileSync(output, sealed);
  } else if (command === 'open') {
    const [input, output] = opts.files;
    const opened = await envelope.open(readBytes(input), opts.keys, { backend });
    writeFileSync(output, opened);
  } else if (command === 'open-many') {
    const results = [];
    for (const job of readStdinJson()) {
      try {
        const opened = await envelope.open(readBytes(job.input), fromHex(job.secret_key_hex), { backend });
        writeFileSync(job.output, opened);
        results.push({ ok: true });
      } catch (err) {
        results.push({ error: err.message, name: err.name });
      }
    }
    process.stdout.write(JSON.stringify(results));
  } else if (command === 'receipts') {
    process.stdout.write(JSON.stringify(await receipts(readStdinJson(), backend)));
  } else if (command === 'report') {
    process.stdout.write(JSON.stringify(readStdinJson().map(report)));
  } else if (command === 'seal-attachment') {
    process.stdout.write(JSON.stringify(await sealAttachment(opts, backend, readStdinJson())));
  } else if (command === 'open-attachment') {
    process.stdout.write(await openAttachment(opts, backend));
  } else if (command === 'check-keys') {
    const results = readStdinJson().map((h) => attempt(() => envelope.checkPublicKey(fromHex(h)) || null));
    process.stdout.write(JSON.stringify(results));
  } else if (command === 'fingerprint') {
    process.stdout.write(JSON.stringify(opts.files.map((b64) => envelope.fingerprint(fromBase64(b64)))));
  } else {
    throw new Error('usage: interop.mjs seal|open|receipts|report|fingerprint ...');
  }
}

main(process.argv.slice(2)).catch((err) => {
  process.stderr.write(`interop: ${err.name}: ${err.message}\n`);
  process.exitCode = 1;
});

