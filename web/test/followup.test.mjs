// The follow-up document (docs/FORMAT.md §15.7): its thread proof agrees with
// portal/followup.py (the known answer below is the one tests/test_followup.py
// checks), and the document is built as the server builds it.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import nacl from 'tweetnacl';
import { fromHex, toHex } from '../src/bytes.js';
import { open, seal } from '../src/envelope.js';
import { replyPublicKey, replySecret } from '../src/receipt.js';
import { threadProof, threadProofs } from '../src/followup-proof.js';
import { followupDocument, followupFields } from '../src/followup.js';

const RECEIPT = '12345 60123 45678 90123 45601 23451';
const TEAM_SECRET = Uint8Array.from({ length: 32 }, (_, i) => i);
const TEAM = '8f40c5adb68f25624ae5b214ea767a6ec94d829d3d7b5e1ad1ba6f3e2138285f';
const TEAM_ID = 'b6c8397c0dbae99a1f67d64b41ccc401';
const PROOF = 'c50e47849f1aafc651ac5a7d2628bd0682e349b379927fd4592e1b508847e28b';

test('the thread proof matches the reference, and the desk side computes the same', async () => {
  const team = nacl.scalarMult.base(TEAM_SECRET);
  assert.equal(toHex(team), TEAM);
  const secret = await replySecret(RECEIPT);
  const pub = await replyPublicKey(RECEIPT);
  assert.equal(toHex(await threadProof(secret, pub, team)), PROOF);
  const { replyPublicKey: derived, proofs } = await threadProofs(secret, [team]);
  assert.deepEqual(derived, pub);
  assert.deepEqual(Object.keys(proofs), [TEAM_ID]);
  assert.equal(toHex(Uint8Array.from(atob(proofs[TEAM_ID]), (c) => c.charCodeAt(0))), PROOF);
  // Another receipt gives another proof for the same key.
  const other = await replySecret('44775 37925 13881 75035 99251 20439');
  assert.notEqual(toHex(await threadProof(other, pub, team)), PROOF);
  assert.deepEqual(fromHex(TEAM), team);
});

test('the follow-up document has exactly the members of §15.7 and opens with the team key', async () => {
  const doc = followupDocument({ account: 'more', consent_publication: 'no' }, 'AAAA', { [TEAM_ID]: 'x' });
  assert.deepEqual(Object.keys(doc), ['type', 'version', 'sealed_by', 'reply_public_key', 'thread_proofs', 'fields']);
  assert.equal(doc.type, 'reprisal-followup');
  assert.equal(doc.version, 1);
  assert.equal(doc.sealed_by, 'browser');
  const team = nacl.scalarMult.base(TEAM_SECRET);
  const sealed = await seal(new TextEncoder().encode(JSON.stringify(doc)), [team], 'browser');
  const plain = await open(sealed, [TEAM_SECRET]);
  assert.deepEqual(JSON.parse(new TextDecoder().decode(plain)), doc);
});

test('the receipt is never one of the follow-up fields; "no change" answers are left out', () => {
  const el = (name, value, extra = {}) => ({ name, value, tagName: 'INPUT', type: 'text', ...extra });
  const form = {
    elements: [
      el('csrf_token', 'tok', { type: 'hidden' }),
      el('receipt', RECEIPT),
      { name: 'account', value: '  more\r\ntext ', tagName: 'TEXTAREA', type: 'textarea' },
      el('consent_publication', '', { type: 'radio', checked: true }),
      el('consent_publication', 'no', { type: 'radio', checked: false }),
      el('consent_reply', '', { type: 'radio', checked: false }),
      el('consent_reply', 'no', { type: 'radio', checked: true }),
    ],
  };
  assert.deepEqual(followupFields(form), { account: 'more\ntext', consent_reply: 'no' });
});

test('a follow-up lists its attachments as a report does, and only when there are some', () => {
  const file = { id: 'a'.repeat(32), media_type: 'image/jpeg', name: 'photo.jpg', sha256: 'b'.repeat(64), size: 3, extra: 1 };
  const doc = followupDocument({ account: 'x' }, 'AAAA', {}, 'browser', [file]);
  assert.deepEqual(doc.attachments, [{ id: file.id, media_type: 'image/jpeg', name: 'photo.jpg', sha256: file.sha256, size: 3 }]);
  assert.equal('attachments' in followupDocument({ account: 'x' }, 'AAAA', {}, 'browser', []), false);
  assert.throws(() => followupDocument({}, 'AAAA', {}, 'browser', Array(65).fill(file)), RangeError);
});
