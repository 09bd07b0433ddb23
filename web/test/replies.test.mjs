// replies.js accepts only a reprisal-reply document (docs/FORMAT.md §15.5) and opens a reply
// sealed as the desk seals it, with the reply secret derived from the receipt.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { open, seal } from '../src/envelope.js';
import { replyPublicKey, replySecret } from '../src/receipt.js';
import { replyText } from '../src/replies.js';

const bytes = (value) => new TextEncoder().encode(typeof value === 'string' ? value : JSON.stringify(value));
const reply = { type: 'reprisal-reply', version: 1, thread_id: 'a'.repeat(32), text: 'Bien reçu.\nШлём ответ.' };

test('a reply document gives its text; anything else gives null', () => {
  assert.equal(replyText(bytes(reply)), reply.text);
  assert.equal(replyText(bytes({ ...reply, type: 'reprisal-report' })), null);
  assert.equal(replyText(bytes({ ...reply, version: 2 })), null);
  assert.equal(replyText(bytes({ ...reply, text: 5 })), null);
  assert.equal(replyText(bytes('not json')), null);
  assert.equal(replyText(new Uint8Array([0xff, 0xfe])), null);
});

test('a reply sealed to the receipt reply key opens with its reply secret', async () => {
  const receipt = '12345 60123 45678 90123 45601 23451';
  const sealed = await seal(bytes(reply), [await replyPublicKey(receipt)], 'desk');
  const plain = await open(sealed, [await replySecret(receipt)]);
  assert.equal(replyText(plain), reply.text);
});
