// report.js builds the document from a form-like object (a minimal DOM stand-in).

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { fromBase64 } from '../src/bytes.js';
import { fieldsFromForm, reportDocument } from '../src/report.js';
import { readJson } from '../testlib/vectors.mjs';

const known = readJson('receipts.json');

// Just what report.js reads from a control.
function control(tag, props = {}) {
  return { tagName: tag.toUpperCase(), type: tag === 'select' ? 'select-one' : 'text', disabled: false, value: '', ...props };
}
const input = (name, type, value, checked = false, extra = {}) => control('input', { name, type, value, checked, ...extra });
const radios = (name, values, picked) => values.map((v) => input(name, 'radio', v, v === picked));
const boxes = (name, values, picked) => values.map((v) => input(name, 'checkbox', v, picked.includes(v)));

function exampleForm() {
  return {
    elements: [
      input('csrf_token', 'hidden', 'a-token'),
      ...radios('target_kind', ['individual', 'group', 'organisation'], 'individual'),
      ...boxes('target_role', ['defender', 'journalist', 'lawyer', 'other'], ['journalist', 'defender']),
      ...radios('target_gender', ['woman', 'man', 'other', 'not_said'], null),
      ...boxes('un_body', ['hrc', 'upr', 'special_procedure'], ['special_procedure']),
      input('un_body_name', 'text', '  Special Rapporteur on human rights defenders\u3000'),
      ...boxes('cooperation_kind', ['information', 'procedure'], []),
      ...boxes('acts', ['threats', 'harassment', 'surveillance', 'detention'], ['detention', 'threats', 'surveillance']),
      ...radios('setting', ['online', 'offline', 'both'], null),
      input('country', 'text', 'Ruritania'),
      control('select', { name: 'when_month', value: '3' }),
      input('when_year', 'text', '2026'),
      input('when_approximate', 'checkbox', 'on', true),
      ...radios('ongoing_risk', ['yes', 'no', 'unknown'], null),
      input('urgent', 'checkbox', 'on', true),
      ...radios('consent_informed', ['yes', 'no'], 'yes'),
      ...radios('consent_publication', ['named', 'anonymous', 'no'], 'anonymous'),
      ...radios('consent_raise_with_state', ['yes', 'no'], 'no'),
      ...radios('consent_reply', ['yes', 'no'], 'yes'),
      ...radios('reported_before', ['yes', 'no', 'unknown'], null),
      input('reported_where', 'text', ' \n '),
      control('textarea', { name: 'account', type: 'textarea', value: '\nTras mi testimonio ante el Consejo me siguieron.\nПотом угрожали семье.\n\n' }),
      input('server_seal_consent', 'checkbox', 'yes', true),
      control('button', { name: 'send', type: 'submit', value: 'x' }),
      input('', 'submit', 'Send'),
    ],
  };
}

test('the form gives the document portal.report builds (receipts.json "report")', () => {
  const fields = fieldsFromForm(exampleForm());
  assert.deepEqual(fields, known.report.fields);
  // Arrays keep form order, not click order.
  assert.deepEqual(fields.acts, ['threats', 'surveillance', 'detention']);
  const doc = reportDocument(fields, fromBase64(known.report.document.reply_public_key), 'browser');
  assert.deepEqual(doc, known.report.document);
  assert.deepEqual(Object.keys(doc), ['type', 'version', 'sealed_by', 'reply_public_key', 'fields']);
});

test('empty answers, ignored names, disabled controls and buttons are left out', () => {
  const fields = fieldsFromForm({
    elements: [
      input('csrf_token', 'hidden', 'x'),
      input('server_seal_consent', 'checkbox', 'yes', true),
      input('country', 'text', '   '),
      input('when_year', 'text', '2020', false, { disabled: true }),
      input('reported_where', 'text', 'Geneva', false, { matches: (s) => s === ':disabled' }),
      ...boxes('acts', ['threats', 'other'], []),
      input('urgent', 'checkbox', 'on', false),
      input('pic', 'file', 'C:\\fakepath\\x.jpg'),
      control('button', { name: 'b', type: 'submit', value: 'v' }),
      { tagName: 'FIELDSET', name: 'group', type: 'fieldset' },
    ],
  });
  assert.deepEqual(fields, {});
});

test('a multi-select is an array, a one-choice select a string; Python whitespace rules', () => {
  const fields = fieldsFromForm({
    elements: [
      control('select', {
        name: 'un_body',
        multiple: true,
        options: [
          { value: 'hrc', selected: true },
          { value: 'upr', selected: false },
          { value: 'other', selected: true },
        ],
      }),
      // U+FEFF is not whitespace to Python; U+0085 and U+001C are.
      input('country', 'text', '\ufeffX\u0085\x1c'),
    ],
  });
  assert.deepEqual(fields, { un_body: ['hrc', 'other'], country: '\ufeffX' });
});

test('two answers for a one-answer field is a page bug, not silently resolved', () => {
  assert.throws(
    () => fieldsFromForm({ elements: [input('country', 'text', 'A'), input('country', 'text', 'B')] }),
    /two answers for "country"/,
  );
});

test('the attachments member lists each file in the order chosen, and only when there are some', () => {
  const key = new Uint8Array(32).fill(7);
  const a = { id: 'a'.repeat(32), media_type: 'image/png', name: 'b.png', sha256: '1'.repeat(64), size: 3, extra: 1 };
  const b = { id: 'b'.repeat(32), media_type: '', name: 'a.txt', sha256: '2'.repeat(64), size: 0 };
  const doc = reportDocument({ account: 'x' }, key, 'browser', [a, b]);
  assert.deepEqual(Object.keys(doc), ['type', 'version', 'sealed_by', 'reply_public_key', 'fields', 'attachments']);
  assert.deepEqual(doc.attachments, [
    { id: 'a'.repeat(32), media_type: 'image/png', name: 'b.png', sha256: '1'.repeat(64), size: 3 },
    { id: 'b'.repeat(32), media_type: '', name: 'a.txt', sha256: '2'.repeat(64), size: 0 },
  ]);
  assert.equal('attachments' in reportDocument({ account: 'x' }, key, 'browser', []), false);
  assert.equal('attachments' in reportDocument({ account: 'x' }, key), false);
  assert.throws(() => reportDocument({}, key, 'browser', new Array(65).fill(b)), RangeError);
});
