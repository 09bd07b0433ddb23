// The follow-up page's controller (portal/static/dist/followup.js, loaded with
// `defer`). Without it, the form posts to /followup/plain and the server seals
// the follow-up after the submitter's explicit choice. With it, the receipt
// never leaves the browser:
//
// - once the page is parsed, this script loads the crypto bundle (and the
//   pure-JS AES-GCM bundle only when crypto.subtle is missing or broken);
// - on submit it normalises the receipt, derives the lookup token and the
//   reply secret, builds the follow-up document (docs/FORMAT.md §15.7: the
//   text, the consent answers changed, and a thread proof per team key),
//   seals it to every key in #recipient-keys and POSTs the envelope to
//   data-submit-url with only the lookup token and the CSRF token;
// - files chosen in #attachment-files (the report form's partial, enabled
//   here: without JavaScript the page takes no files) are first sealed and
//   uploaded with attachments.js, as for a report; the follow-up then lists
//   them and names their uploads in X-Attachments;
// - on 201 the form is replaced by #followup-sent-template.
//
// Every string a person reads comes from the form's data-msg-* attributes.

import { attachmentListing, fieldsFromForm } from './report.js';
import { AttachmentProblem, formAttachments } from './attachments.js';
import { utf8 } from './text.js';
import { loadCrypto } from './loader.js';

export const FOLLOWUP_TYPE = 'reprisal-followup';
export const FOLLOWUP_VERSION = 1;

const DEFAULTS = {
  loading: 'Preparing the encryption…',
  sealing: 'Sealing…',
  sending: 'Sending…',
  noCrypto: 'This browser could not load the encryption, so nothing was sent. Reload the page and try again.',
  noKeys: 'The portal has no valid encryption key at the moment, so nothing was sent. Try again later.',
  badReceipt: 'This is not a valid receipt, so nothing was sent. Check what you typed.',
  empty: 'Write something, or change at least one consent answer.',
  network: 'The follow-up could not be sent. Check your connection and try again.',
  server: 'The portal could not accept the follow-up; nothing was stored. Try again later.',
  failed: 'Something went wrong while sealing the follow-up, so nothing was sent. Try again.',
};

function messages(form) {
  const d = form.dataset || {};
  const out = {};
  for (const [key, value] of Object.entries(DEFAULTS)) {
    out[key] = d['msg' + key[0].toUpperCase() + key.slice(1)] || value;
  }
  return out;
}

class UserFacing extends Error {}

/** The follow-up's fields: the form's answers without the receipt (it is never sealed). */
export function followupFields(form) {
  const elements = Array.from(form.elements || []).filter((el) => el.name !== 'receipt');
  return fieldsFromForm({ elements });
}

/**
 * The JSON object sealed in the envelope, as portal.followup.document builds it;
 * `attachments` (optional) as for a report, the member left out when there are none.
 */
export function followupDocument(fields, replyPublicKeyBase64, proofs, sealedBy = 'browser', attachments = []) {
  const doc = {
    type: FOLLOWUP_TYPE,
    version: FOLLOWUP_VERSION,
    sealed_by: sealedBy,
    reply_public_key: replyPublicKeyBase64,
    thread_proofs: { ...proofs },
    fields: { ...fields },
  };
  const listed = attachmentListing(attachments);
  if (listed.length) doc.attachments = listed;
  return doc;
}

/** The active keys from the #recipient-keys block, each checked against its fingerprint. */
function recipientKeys(pc, msg) {
  const block = document.getElementById('recipient-keys');
  let entries;
  try {
    entries = JSON.parse(block ? block.textContent : '');
  } catch {
    throw new UserFacing(msg.noKeys);
  }
  if (!Array.isArray(entries) || entries.length === 0) throw new UserFacing(msg.noKeys);
  const keys = entries.map((entry) => {
    let key;
    try {
      key = pc.bytes.fromBase64(entry.public_key);
    } catch {
      throw new UserFacing(msg.noKeys);
    }
    if (key.length !== 32 || pc.fingerprint(key) !== entry.fingerprint) throw new UserFacing(msg.noKeys);
    return key;
  });
  try {
    pc.checkRecipients(keys);
  } catch {
    throw new UserFacing(msg.noKeys);
  }
  return keys;
}

function show(el, text) {
  el.textContent = text || '';
  el.hidden = !text;
}

async function errorMessage(response, msg) {
  try {
    const body = await response.json();
    if (body && typeof body.error === 'string' && body.error.trim()) return body.error;
  } catch {
    // not JSON: the page's own message
  }
  return msg.server;
}

function csrfValue(form) {
  const csrf = form.querySelector('input[name="csrf_token"]');
  return csrf ? csrf.value : '';
}

async function upload(pc, attachments, keys, csrf) {
  try {
    return await attachments.send(pc, keys, csrf);
  } catch (err) {
    throw err instanceof AttachmentProblem ? new UserFacing(err.message) : err;
  }
}

async function seal(pc, form, msg, attachments, status) {
  const keys = recipientKeys(pc, msg);
  const fields = followupFields(form);
  if (!Object.keys(fields).length) throw new UserFacing(msg.empty);
  const field = form.querySelector('input[name="receipt"]');
  let digits;
  try {
    digits = pc.receipt.normalize(field ? field.value : '');
  } catch {
    throw new UserFacing(msg.badReceipt);
  }
  show(status, '');
  const uploaded = await upload(pc, attachments, keys, csrfValue(form));
  show(status, msg.sealing);
  const token = pc.bytes.toHex(await pc.receipt.lookupToken(digits));
  const secret = await pc.receipt.replySecret(digits);
  const { replyPublicKey, proofs } = await pc.threadProofs(secret, keys);
  secret.fill(0);
  const listed = uploaded.map((u) => u.metadata);
  const doc = followupDocument(fields, pc.bytes.toBase64(replyPublicKey), proofs, 'browser', listed);
  const files = uploaded.map((u) => u.token).join(' ');
  return { token, files, body: await pc.seal(utf8(JSON.stringify(doc)), keys, 'browser') };
}

async function send(form, sealed, msg) {
  const extra = sealed.files ? { 'X-Attachments': sealed.files } : {};
  try {
    return await fetch(form.dataset.submitUrl, {
      method: 'POST',
      credentials: 'same-origin',
      cache: 'no-store',
      redirect: 'error',
      referrerPolicy: 'no-referrer',
      headers: {
        'Content-Type': 'application/octet-stream',
        'X-CSRFToken': csrfValue(form),
        'X-Lookup-Token': sealed.token,
        ...extra,
      },
      body: sealed.body,
    });
  } catch {
    throw new UserFacing(msg.network);
  }
}

function confirm(form) {
  const template = document.getElementById('followup-sent-template');
  const fragment = template.content.cloneNode(true);
  const focus = fragment.querySelector('[data-focus], h1');
  form.replaceWith(fragment);
  if (focus) {
    focus.setAttribute('tabindex', '-1');
    focus.focus();
  }
}

function init() {
  const form = document.getElementById('followup-form');
  if (!form || form.dataset.portalReady) return;
  form.dataset.portalReady = '1';
  const msg = messages(form);
  const status = form.querySelector('[data-form-status]');
  const alert = form.querySelector('[data-form-alert]');
  const attachments = formAttachments(form);
  const crypto = loadCrypto(form);
  crypto.catch(() => show(alert, msg.noCrypto));
  for (const el of form.querySelectorAll('[data-js-waiting]')) el.hidden = true;
  for (const el of form.querySelectorAll('[data-js-send]')) el.hidden = false;
  for (const el of form.querySelectorAll('[data-js-submit]')) el.disabled = false;
  let busy = false;
  form.addEventListener('submit', async (event) => {
    event.preventDefault(); // the receipt and the plaintext are never posted from here
    if (busy) return;
    busy = true;
    show(alert, '');
    show(status, msg.loading);
    try {
      let pc;
      try {
        pc = await crypto;
      } catch {
        throw new UserFacing(msg.noCrypto);
      }
      show(status, msg.sealing);
      const sealed = await seal(pc, form, msg, attachments, status);
      show(status, msg.sending);
      const response = await send(form, sealed, msg);
      if (response.status !== 201) throw new UserFacing(await errorMessage(response, msg));
      attachments.sent();
      confirm(form);
    } catch (err) {
      show(status, '');
      show(alert, err instanceof UserFacing ? err.message : msg.failed);
      if (!(err instanceof UserFacing) && self.console) console.error(err);
    } finally {
      busy = false;
    }
  });
}

if (typeof document !== 'undefined') {
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
  else init();
}
