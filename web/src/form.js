// The report form's page controller (portal/static/dist/form.js, loaded with
// `defer`). docs/ARCHITECTURE.md, "The source interface contract", is the
// contract with the server; in short:
//
// - the form works without this script (it posts to /report/plain);
// - once the page is parsed, this script loads the crypto bundle (and, only
//   when crypto.subtle is missing or fails its known answers, the pure-JS
//   AES-GCM bundle), each with the SRI hash from the form's data attributes;
// - on submit it builds the report document, a receipt and its derived
//   values, seals the document to every key in #recipient-keys, POSTs the
//   envelope to data-submit-url and, on 201, replaces the form with
//   #confirmation-template showing the receipt and the fingerprints;
// - files chosen in #attachment-files are first sealed and uploaded one by
//   one (attachments.js, with progress, pause and resume in #upload-progress);
//   the report then lists them and names their uploads in X-Attachments.
//
// Every string a person reads comes from the page, so the server can translate
// it: the form's data-msg-* attributes (English defaults below), and optional
// elements [data-form-status] (role="status") and [data-form-alert]
// (role="alert") inside the form, created if absent. No inline script, no
// eval, and page text is only ever set with textContent.

import { fieldsFromForm, reportDocument } from './report.js';
import { toBase64, toHex } from './bytes.js';
import { utf8 } from './text.js';
import { loadCrypto } from './loader.js';
import { AttachmentProblem, formAttachments } from './attachments.js';

const DEFAULTS = {
  loading: 'Preparing the encryption…',
  sealing: 'Sealing…',
  sending: 'Sending…',
  noCrypto:
    'This browser could not load the encryption, so nothing was sent. Reload the page and try again.',
  noKeys: 'The portal has no valid encryption key at the moment, so nothing was sent. Try again later.',
  network: 'The report could not be sent. Check your connection and try again; nothing was stored.',
  server: 'The portal could not accept the report; nothing was stored. Try again later.',
  failed: 'Something went wrong while sealing the report, so nothing was sent. Try again.',
};

function messages(form) {
  const d = form.dataset || {};
  return {
    loading: d.msgLoading || DEFAULTS.loading,
    sealing: d.msgSealing || DEFAULTS.sealing,
    sending: d.msgSending || DEFAULTS.sending,
    noCrypto: d.msgNoCrypto || DEFAULTS.noCrypto,
    noKeys: d.msgNoKeys || DEFAULTS.noKeys,
    network: d.msgNetwork || DEFAULTS.network,
    server: d.msgServer || DEFAULTS.server,
    failed: d.msgFailed || DEFAULTS.failed,
  };
}

/** A message meant for the submitter (already translated), as opposed to a bug. */
class UserFacing extends Error {}

/** The active keys from the #recipient-keys data block, each checked against its fingerprint. */
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
    // The fingerprint shown is the one computed here from the bytes sealed to,
    // never one taken on trust; a key that does not match its entry is refused.
    const computed = key.length === 32 ? pc.fingerprint(key) : null;
    if (computed !== entry.fingerprint) throw new UserFacing(msg.noKeys);
    return { label: String(entry.label), key, fingerprint: computed };
  });
  try {
    pc.checkRecipients(keys.map((k) => k.key));
  } catch {
    throw new UserFacing(msg.noKeys);
  }
  return keys;
}

function findOrCreate(form, selector, role) {
  let el = form.querySelector(selector);
  if (!el) {
    el = document.createElement('p');
    el.setAttribute(selector.slice(1, -1), '');
    el.hidden = true;
    if (role === 'alert') form.insertBefore(el, form.firstChild);
    else form.appendChild(el);
  }
  el.setAttribute('role', role);
  return el;
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
    // not JSON (a proxy's page, for example): fall through to the page's own message
  }
  return msg.server;
}

function fillConfirmation(template, receiptText, keys) {
  const fragment = template.content.cloneNode(true);
  for (const el of fragment.querySelectorAll('[data-receipt]')) el.textContent = receiptText;
  for (const list of fragment.querySelectorAll('[data-fingerprints]')) {
    const model = list.querySelector('[data-fingerprint-item]');
    if (model) model.remove();
    for (const { label, fingerprint } of keys) {
      let item;
      if (model) {
        item = model.cloneNode(true);
        const labelEl = item.querySelector('[data-label]');
        const printEl = item.querySelector('[data-fingerprint]');
        if (labelEl) labelEl.textContent = label;
        if (printEl) printEl.textContent = fingerprint;
        if (!labelEl && !printEl) item.textContent = `${label}: ${fingerprint}`;
      } else {
        item = document.createElement('li');
        const labelEl = document.createElement('span');
        labelEl.textContent = label;
        const printEl = document.createElement('code');
        printEl.textContent = fingerprint;
        item.append(labelEl, ' ', printEl);
      }
      list.appendChild(item);
    }
  }
  return fragment;
}

function init() {
  const form = document.getElementById('report-form');
  if (!form || form.dataset.portalReady) return;
  form.dataset.portalReady = '1';
  const msg = messages(form);
  const status = findOrCreate(form, '[data-form-status]', 'status');
  const alert = findOrCreate(form, '[data-form-alert]', 'alert');
  const attachments = formAttachments(form);
  const crypto = loadCrypto(form);
  crypto.catch(() => show(alert, msg.noCrypto)); // never fail silently, even before a submit
  // Only now may the form be submitted: this handler, not the form's plain action, sends it.
  for (const el of form.querySelectorAll('[data-js-waiting]')) el.hidden = true;
  for (const el of form.querySelectorAll('[data-js-send]')) el.hidden = false;
  for (const el of form.querySelectorAll('[data-js-submit]')) el.disabled = false;
  let busy = false;

  form.addEventListener('submit', async (event) => {
    event.preventDefault();
    if (busy) return;
    busy = true;
    // The upload's own Pause/Resume/Cancel buttons stay usable while the form is busy.
    const buttons = Array.from(form.querySelectorAll('button, input[type="submit"]')).filter(
      (b) => !b.closest('#upload-progress'),
    );
    buttons.forEach((b) => (b.disabled = true));
    form.setAttribute('aria-busy', 'true');
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
      const keys = recipientKeys(pc, msg);
      const fields = fieldsFromForm(form);
      const csrf = form.querySelector('input[name="csrf_token"]');
      show(status, '');
      let uploaded;
      try {
        uploaded = await attachments.send(pc, keys.map((k) => k.key), csrf ? csrf.value : '');
      } catch (err) {
        throw err instanceof AttachmentProblem ? new UserFacing(err.message) : err;
      }
      show(status, msg.sealing);
      const receipt = pc.receipt.generate();
      const token = await pc.receipt.lookupToken(receipt);
      const replyKey = await pc.receipt.replyPublicKey(receipt);
      const listed = uploaded.map((u) => u.metadata);
      const doc = reportDocument(fields, replyKey, 'browser', listed);
      const sealed = await pc.seal(utf8(JSON.stringify(doc)), keys.map((k) => k.key), 'browser');
      show(status, msg.sending);
      const extra = uploaded.length ? { 'X-Attachments': uploaded.map((u) => u.token).join(' ') } : {};
      let response;
      try {
        response = await fetch(form.dataset.submitUrl, {
          method: 'POST',
          credentials: 'same-origin',
          cache: 'no-store',
          redirect: 'error',
          referrerPolicy: 'no-referrer',
          headers: {
            'Content-Type': 'application/octet-stream',
            'X-CSRFToken': csrf ? csrf.value : '',
            'X-Lookup-Token': toHex(token),
            'X-Reply-Key': toBase64(replyKey),
            ...extra,
          },
          body: sealed,
        });
      } catch {
        throw new UserFacing(msg.network);
      }
      if (response.status !== 201) throw new UserFacing(await errorMessage(response, msg));
      attachments.sent();
      const template = document.getElementById('confirmation-template');
      const confirmation = fillConfirmation(template, receipt, keys);
      const focus = confirmation.querySelector('[data-focus], h1, h2');
      form.replaceWith(confirmation);
      if (focus) {
        if (!focus.hasAttribute('tabindex')) focus.setAttribute('tabindex', '-1');
        focus.focus();
      }
    } catch (err) {
      show(status, '');
      show(alert, err instanceof UserFacing ? err.message : msg.failed);
      if (!(err instanceof UserFacing) && self.console) console.error(err);
      form.removeAttribute('aria-busy');
      buttons.forEach((b) => (b.disabled = false));
      busy = false;
    }
  });
}

if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', init);
else init();
