// signature.js (the browser's check of the desk's reply signatures) against the known answers
// of tests/vectors/v1/signatures.json, which also check portal/signing.py; and replies.js's
// openReply, which never opens a reply whose signature does not verify.

import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import nacl from 'tweetnacl';
import { fromHex, toBase64 } from '../src/bytes.js';
import { open, seal } from '../src/envelope.js';
import { replyPublicKey, replySecret } from '../src/receipt.js';
import { openReply, UNVERIFIED } from '../src/replies.js';
import { parseKeys, replyMessage, verifyReply } from '../src/signature.js';

const data = JSON.parse(readFileSync(new URL('../../tests/vectors/v1/signatures.json', import.meta.url)));
const desk = fromHex(data.keys[0].public_key_hex);

test('the reply message and valid signatures match the known answers', () => {
  for (const c of data.replies) {
    const envelope = fromHex(c.envelope_hex);
    assert.equal(Buffer.from(replyMessage(c.thread_id, envelope)).toString('hex'), c.message_hex);
    assert.equal(verifyReply([desk], c.thread_id, envelope, c.signature_base64), true, c.name);
    // Any other listed key is tried too; a page with no key verifies nothing.
    assert.equal(verifyReply([fromHex(data.keys[1].public_key_hex), desk], c.thread_id, envelope, c.signature_base64), true);
    assert.equal(verifyReply([], c.thread_id, envelope, c.signature_base64), false);
  }
});

test('every invalid signature is refused', () => {
  for (const c of data.invalid_replies) {
    assert.equal(verifyReply([desk], c.thread_id, fromHex(c.envelope_hex), c.signature_base64), false, c.name);
  }
});

test('hostile inputs give false, never an exception', () => {
  const c = data.replies[0];
  const envelope = fromHex(c.envelope_hex);
  for (const sig of [null, undefined, '', 'AAAA', 'not base64!', c.signature_base64.slice(0, -4)]) {
    assert.equal(verifyReply([desk], c.thread_id, envelope, sig), false);
  }
  for (const thread of [null, '', c.thread_id.toUpperCase(), `${c.thread_id}0`]) {
    assert.equal(verifyReply([desk], thread, envelope, c.signature_base64), false);
  }
});

test('the page keys are read from data-signing-keys', () => {
  const text = `${data.keys[0].public_key_base64} ${data.keys[1].public_key_base64}`;
  assert.deepEqual(parseKeys(text).map((k) => toBase64(k)), [data.keys[0].public_key_base64, data.keys[1].public_key_base64]);
  assert.deepEqual(parseKeys(''), []);
  assert.deepEqual(parseKeys('AAAA junk!'), []);
});

// What openReply uses of self.PortalCrypto (crypto-entry.js puts the same functions there).
const pc = { open, verifyReply, bytes: { fromBase64: (t) => Uint8Array.from(Buffer.from(t, 'base64')) } };
const receipt = '12345 60123 45678 90123 45601 23451';
const thread = 'a'.repeat(32);
const document = (t) => new TextEncoder().encode(JSON.stringify({ type: 'reprisal-reply', version: 1, thread_id: t, text: 'Bien reçu.' }));

async function signedItem(signer, t = thread, docThread = t) {
  const sealed = await seal(document(docThread), [await replyPublicKey(receipt)], 'desk');
  const signature = nacl.sign.detached(replyMessage(t, sealed), signer.secretKey);
  return { thread_id: t, envelope: toBase64(sealed), signature: toBase64(signature) };
}

test('openReply shows only replies the desk signed, for the thread they name', async () => {
  const team = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(7));
  const other = nacl.sign.keyPair.fromSeed(new Uint8Array(32).fill(8));
  const secret = await replySecret(receipt);
  assert.equal(await openReply(pc, [team.publicKey], await signedItem(team), secret), 'Bien reçu.');
  assert.equal(await openReply(pc, [team.publicKey], await signedItem(other), secret), UNVERIFIED);
  assert.equal(await openReply(pc, [], await signedItem(team), secret), UNVERIFIED);
  const unsigned = { ...(await signedItem(team)), signature: null };
  assert.equal(await openReply(pc, [team.publicKey], unsigned, secret), UNVERIFIED);
  // Signed for its thread, but the document inside names another: not shown.
  assert.equal(await openReply(pc, [team.publicKey], await signedItem(team, thread, 'b'.repeat(32)), secret), null);
});
