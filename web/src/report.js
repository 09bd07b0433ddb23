// The report document sealed in the envelope (docs/FORMAT.md §15), built from
// the rendered form as docs/ARCHITECTURE.md says; the server builds the same
// one with portal.report on the no-JavaScript path. No crypto here: this
// module is part of the small form.js bundle.

import { toBase64 } from './bytes.js';
import { pyStrip } from './text.js';

export const REPORT_TYPE = 'reprisal-report';
export const REPORT_VERSION = 1;
/** Form controls that belong to the page, not to the report. */
export const IGNORED_NAMES = new Set(['csrf_token', 'server_seal_consent']);
const SKIPPED_TYPES = new Set(['submit', 'button', 'reset', 'image', 'file']);
const SKIPPED_TAGS = new Set(['button', 'fieldset', 'output', 'object']);

function isDisabled(el) {
  // :disabled also covers controls inside a disabled <fieldset>.
  return typeof el.matches === 'function' ? el.matches(':disabled') : Boolean(el.disabled);
}

function controls(form) {
  const out = [];
  for (const el of Array.from(form.elements || [])) {
    const tag = String(el.tagName || '').toLowerCase();
    const type = String(el.type || '').toLowerCase();
    if (!el.name || IGNORED_NAMES.has(el.name) || SKIPPED_TAGS.has(tag) || SKIPPED_TYPES.has(type)) {
      continue;
    }
    if (!isDisabled(el)) out.push({ el, tag, type });
  }
  return out;
}

/**
 * The report's field values from a form element (or anything with an
 * `elements` list of controls): checkbox groups (several checkboxes sharing a
 * name, or a `<select multiple>`) become an array of the checked values in form
 * order; a checkbox alone under its name is a flag, `true` when checked; every
 * other control (radio group, select, text, textarea) becomes its value with
 * surrounding whitespace stripped as Python's str.strip() does. Empty answers
 * are left out; `csrf_token` and `server_seal_consent` are ignored. Throws if a
 * single-answer field has two answers (a page bug, never silently resolved).
 */
export function fieldsFromForm(form) {
  const list = controls(form);
  const boxes = new Map();
  for (const { el, type } of list) {
    if (type === 'checkbox') boxes.set(el.name, (boxes.get(el.name) || 0) + 1);
  }
  const fields = {};
  const multi = new Set();
  const answered = new Set();
  for (const { el, tag, type } of list) {
    const name = el.name;
    if (type === 'checkbox' && boxes.get(name) === 1) {
      if (el.checked) fields[name] = true;
      continue;
    }
    if (type === 'checkbox' || (tag === 'select' && el.multiple)) {
      multi.add(name);
      if (!Array.isArray(fields[name])) fields[name] = [];
      const picked =
        type === 'checkbox'
          ? el.checked
            ? [el.value]
            : []
          : Array.from(el.options || []).filter((o) => o.selected && !o.disabled).map((o) => o.value);
      for (const value of picked) if (!fields[name].includes(value)) fields[name].push(value);
      continue;
    }
    if (type === 'radio' && !el.checked) continue;
    // As portal.report does: line breaks become LF (a browser's .value already does this).
    const raw = el.value == null ? '' : String(el.value);
    const value = pyStrip(raw.replace(/\r\n/g, '\n').replace(/\r/g, '\n'));
    if (answered.has(name)) throw new Error(`the form has two answers for "${name}"`);
    answered.add(name);
    if (value) fields[name] = value;
  }
  for (const name of multi) if (!fields[name].length) delete fields[name];
  return fields;
}

export const MAX_ATTACHMENTS = 64;
const ATTACHMENT_KEYS = ['id', 'media_type', 'name', 'sha256', 'size'];

/** A document's `attachments` member (§15.1): exactly the listed keys, in the submitter's order. */
export function attachmentListing(attachments) {
  if (attachments.length > MAX_ATTACHMENTS) throw new RangeError(`at most ${MAX_ATTACHMENTS} attachments`);
  return attachments.map((a) => Object.fromEntries(ATTACHMENT_KEYS.map((k) => [k, a[k]])));
}

/**
 * The JSON object sealed in the envelope, as portal.report.document builds it.
 * `attachments` (optional): each attachment's {id, media_type, name, sha256,
 * size}, in the order the submitter chose them; the member is left out when
 * there are none (docs/FORMAT.md §15.1).
 */
export function reportDocument(fields, replyPublicKey, sealedBy = 'browser', attachments = []) {
  const doc = {
    type: REPORT_TYPE,
    version: REPORT_VERSION,
    sealed_by: sealedBy,
    reply_public_key: toBase64(replyPublicKey),
    fields: { ...fields },
  };
  const listed = attachmentListing(attachments);
  if (listed.length) doc.attachments = listed;
  return doc;
}
