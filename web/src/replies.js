// The replies page's controller (portal/static/dist/replies.js, loaded with
// `defer`). Without it, the form posts the receipt to /replies and the server
// opens the replies for that one request. With it, the receipt never leaves
// the browser:
//
// - once the page is parsed, this script loads the crypto bundle (and, only
//   when crypto.subtle is missing or fails its known answers, the pure-JS
//   AES-GCM bundle), each with the SRI hash from the form's data attributes;
// - on submit it normalises the receipt, derives the lookup token and the
//   reply secret, POSTs only the lookup token (X-Lookup-Token, with the CSRF
//   token) to data-sealed-url, checks each returned reply's signature against
//   the desk's signing keys in data-signing-keys (signature.js, in the crypto
//   bundle; a reply that fails is neither opened nor shown, and the page says
//   so), and opens each verified envelope locally;
// - the texts are shown with textContent only; the reply must be a
//   reprisal-reply document (docs/FORMAT.md §15.5) for the signed thread.
//
// Every string a person reads comes from the form's data-msg-* attributes.

import { loadCrypto } from './loader.js';

const DEFAULTS = {
  loading: 'Preparing the decryption…',
  fetching: 'Looking for replies…',
  noCrypto: 'This browser could not load the decryption. Reload the page and try again.',
  badReceipt: 'This is not a valid receipt. Check what you typed and try again.',
  none: 'There are no replies for this receipt. Check that you typed it exactly, and look again later.',
  network: 'The replies could not be fetched. Check your connection and try again.',
  unreadable: 'A reply could not be opened with this receipt.',
  unverified: 'A reply could not be verified as coming from the team, so it is not shown.',
  received: 'Reply received on',
};

function messages(form) {
  const d = form.dataset || {};
  const out = {};
  for (const [key, value] of Object.entries(DEFAULTS)) {
    const name = 'msg' + key[0].toUpperCase() + key.slice(1);
    out[key] = d[name] || value;
  }
  return out;
}

class UserFacing extends Error {}


function region(form, attribute, role) {
  let el = document.querySelector(`[${attribute}]`);
  if (!el) {
    el = document.createElement('div');
    el.setAttribute(attribute, '');
    el.setAttribute('role', role);
    form.parentNode.insertBefore(el, form.nextSibling);
  }
  return el;
}

function say(el, text) {
  el.textContent = text || '';
  el.hidden = !text;
}

/** The reply's text, or null if the plaintext is not a reply (to `threadId`, if given). */
export function replyText(plain, threadId) {
  let doc;
  try {
    doc = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(plain));
  } catch {
    return null;
  }
  if (!doc || doc.type !== 'reprisal-reply' || doc.version !== 1) return null;
  if (typeof doc.text !== 'string' || typeof doc.thread_id !== 'string') return null;
  if (threadId !== undefined && doc.thread_id !== threadId) return null;
  return doc.text;
}

/** What openReply gives for a reply the desk did not sign (never a string a reply could hold). */
export const UNVERIFIED = Symbol('unverified');

/** The text of one fetched reply; UNVERIFIED unless the desk signed it; null if unreadable. */
export async function openReply(pc, keys, item, secret) {
  let sealed;
  try {
    sealed = pc.bytes.fromBase64(item.envelope);
  } catch {
    return null;
  }
  // Checked before opening: a reply the desk did not sign is never decrypted or shown.
  if (!pc.verifyReply(keys, item.thread_id, sealed, item.signature)) return UNVERIFIED;
  try {
    return replyText(await pc.open(sealed, [secret]), item.thread_id);
  } catch {
    return null;
  }
}

async function fetchSealed(form, token, msg) {
  const csrf = form.querySelector('input[name="csrf_token"]');
  let response;
  try {
    response = await fetch(form.dataset.sealedUrl, {
      method: 'POST',
      credentials: 'same-origin',
      cache: 'no-store',
      redirect: 'error',
      referrerPolicy: 'no-referrer',
      headers: { 'X-CSRFToken': csrf ? csrf.value : '', 'X-Lookup-Token': token },
    });
  } catch {
    throw new UserFacing(msg.network);
  }
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON
  }
  if (response.status !== 200) {
    throw new UserFacing(body && typeof body.error === 'string' ? body.error : msg.network);
  }
  if (!body || !Array.isArray(body.replies)) throw new UserFacing(msg.network);
  return body.replies;
}

function init() {
  const form = document.querySelector('form[data-replies-form]');
  if (!form) return;
  const msg = messages(form);
  const status = region(form, 'data-replies-status', 'status');
  const alert = region(form, 'data-replies-alert', 'alert');
  const output = region(form, 'data-replies-output', 'region');
  say(status, msg.loading);
  const ready = loadCrypto(form).then(
    (pc) => {
      say(status, '');
      return pc;
    },
    () => null,
  );
  let busy = false;
  form.addEventListener('submit', async (event) => {
    event.preventDefault(); // the receipt is never posted from here
    if (busy) return;
    busy = true;
    say(alert, '');
    output.textContent = '';
    try {
      const pc = await ready;
      if (!pc) throw new UserFacing(msg.noCrypto);
      const field = form.querySelector('input[name="receipt"]');
      let digits;
      try {
        digits = pc.receipt.normalize(field ? field.value : '');
      } catch {
        throw new UserFacing(msg.badReceipt);
      }
      const token = pc.bytes.toHex(await pc.receipt.lookupToken(digits));
      say(status, msg.fetching);
      const sealed = await fetchSealed(form, token, msg);
      const secret = await pc.receipt.replySecret(digits);
      const keys = pc.signingKeys(form.dataset.signingKeys);
      let unreadable = 0;
      let unverified = 0;
      for (const item of sealed) {
        const text = await openReply(pc, keys, item || {}, secret);
        if (text === UNVERIFIED) {
          unverified += 1;
          continue;
        }
        if (text === null) {
          unreadable += 1;
          continue;
        }
        const article = document.createElement('article');
        article.className = 'reply';
        article.setAttribute('data-reply', '');
        const heading = document.createElement('h2');
        heading.textContent = `${msg.received} ${String(item.received_on)}`;
        const p = document.createElement('p');
        p.className = 'reply-text';
        p.setAttribute('data-reply-text', '');
        p.textContent = text;
        article.append(heading, p);
        output.append(article);
      }
      secret.fill(0);
      say(status, '');
      const problems = [unverified ? msg.unverified : '', unreadable ? msg.unreadable : ''];
      if (unverified || unreadable) say(alert, problems.filter(Boolean).join(' '));
      else if (!sealed.length) say(status, msg.none);
    } catch (err) {
      say(status, '');
      say(alert, err instanceof UserFacing ? err.message : msg.noCrypto);
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
