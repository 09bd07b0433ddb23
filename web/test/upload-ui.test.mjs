// upload-ui.js's pure parts: the page's sentences, placeholders, figures in the page's language.

import assert from 'node:assert/strict';
import { test } from 'node:test';
import { DEFAULTS, fill, formatBytes, formatDuration, rateOf, uploadMessages } from '../src/upload-ui.js';

function fakeDocument(elements) {
  return { getElementById: (id) => (id in elements ? { dataset: elements[id] } : null) };
}

test('sentences come from #upload-strings, then #upload-progress, else English', () => {
  const doc = fakeDocument({
    'upload-strings': { msgPause: '⟦Pause⟧', msgFigures: '⟦{sent} / {total}⟧' },
    'upload-progress': { msgPause: 'ignored', msgResume: '⟦Resume⟧' },
  });
  const msg = uploadMessages(doc);
  assert.equal(msg.pause, '⟦Pause⟧');
  assert.equal(msg.resume, '⟦Resume⟧');
  assert.equal(msg.figures, '⟦{sent} / {total}⟧');
  assert.equal(msg.lost, DEFAULTS.lost);
  assert.deepEqual(Object.keys(uploadMessages(fakeDocument({}))), Object.keys(DEFAULTS));
});

test('placeholders are filled once; values are never read as placeholders', () => {
  assert.equal(fill('{sent} of {total}', { sent: '{total}', total: '2 MB' }), '{total} of 2 MB');
  assert.equal(fill('{unknown} left', {}), '{unknown} left');
});

test('figures use the page language and sensible units', () => {
  assert.equal(formatBytes(999, 'en'), '999 byte');
  assert.equal(formatBytes(1500, 'en'), '1.5 kB');
  assert.equal(formatBytes(104857600, 'en'), '105 MB');
  assert.equal(formatBytes(2.5e9, 'en'), '2.5 GB');
  assert.match(formatBytes(1500, 'fr'), /^1,5\s?ko$/);
  assert.equal(formatDuration(0.2, 'en'), '1 second');
  assert.equal(formatDuration(59, 'en'), '59 seconds');
  assert.equal(formatDuration(61, 'en'), '2 minutes');
  assert.equal(formatDuration(5400, 'en'), '1.5 hours');
});

test('the speed is taken over the last ten seconds, and unknown when nothing moved', () => {
  assert.equal(rateOf([]), null);
  assert.equal(rateOf([{ t: 0, offset: 0 }]), null);
  const samples = [{ t: 0, offset: 0 }, { t: 5000, offset: 100 }, { t: 12000, offset: 1100 }, { t: 14000, offset: 1300 }];
  assert.equal(rateOf(samples), ((1300 - 100) * 1000) / 9000);
  assert.equal(rateOf([{ t: 0, offset: 500 }, { t: 1000, offset: 100 }]), null); // went back after a restart
});
