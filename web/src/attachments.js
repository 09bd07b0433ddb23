// The files chosen in #attachment-files, sealed one by one in the browser
// (PortalCrypto.attachment, the same keys as the report) and uploaded with
// the resumable protocol, before the report that lists them is sealed.
//
// Nothing leaves the browser before the submitter presses Send. Uploads that
// completed are remembered for this page: if the report itself then fails
// (a dropped connection, say), sending again reuses them, once the server
// confirms it still holds them. Choosing other files deletes the uploads of
// the files no longer chosen; Cancel deletes all of them.

import { UploadCancelled, UploadFailed, createUpload } from './upload.js';
import { createUploadView, fill, formatBytes, uploadMessages } from './upload-ui.js';

export const MAX_FILES = 64; // the report document lists at most 64

/** A sentence for the submitter (already translated). */
export class AttachmentProblem extends Error {}

/** The chosen files, in the order the browser lists them (the order chosen). */
export function chosenFiles(form) {
  const input = form.querySelector('#attachment-files');
  return input && input.files ? Array.from(input.files) : [];
}

function container(form) {
  let div = document.getElementById('upload-progress');
  if (!div) {
    div = document.createElement('div');
    div.id = 'upload-progress';
    div.setAttribute('aria-live', 'polite');
    div.hidden = true;
    const status = form.querySelector('[data-form-status]');
    form.insertBefore(div, status || null);
  }
  return div;
}

function request(url, method, csrf) {
  return fetch(url, {
    method,
    credentials: 'same-origin',
    cache: 'no-store',
    redirect: 'error',
    referrerPolicy: 'no-referrer',
    headers: { 'X-CSRFToken': csrf },
  });
}

function limit(value, fallback) {
  const n = Number(value);
  return Number.isSafeInteger(n) && n > 0 ? n : fallback;
}

/** Refuse, before anything is sent, what the server's limits (the input's data-max-*) would. */
function checkLimits(files, limits, msg) {
  const lang = document.documentElement.lang || undefined;
  const maxFiles = Math.min(limit(limits.maxFiles, MAX_FILES), MAX_FILES);
  if (files.length > maxFiles) throw new AttachmentProblem(fill(msg.tooMany, { max: maxFiles }));
  const perFile = limit(limits.maxFileBytes, Infinity);
  const big = files.find((f) => f.size > perFile);
  if (big) {
    throw new AttachmentProblem(fill(msg.tooLarge, { name: big.name, max: formatBytes(perFile, lang) }));
  }
  const total = limit(limits.maxTotalBytes, Infinity);
  if (files.reduce((n, f) => n + f.size, 0) > total) {
    throw new AttachmentProblem(fill(msg.tooMuch, { max: formatBytes(total, lang) }));
  }
}

/**
 * The attachments of one form. `send(pc, recipients, csrf)` resolves to
 * `[{token, metadata}]` in the chosen order once every upload is complete, or
 * rejects with AttachmentProblem (a message to show) or an unexpected error.
 */
export function formAttachments(form) {
  const msg = uploadMessages();
  const input = form.querySelector('#attachment-files');
  const limits = (input && input.dataset) || {};
  const url = limits.uploadsUrl || '/uploads';
  const kept = new Map(); // File -> {sealer, token}
  let csrfToken = '';

  const discard = (file) => {
    const entry = kept.get(file);
    kept.delete(file);
    if (entry && entry.token) request(`${url}/${entry.token}`, 'DELETE', csrfToken).catch(() => {});
  };

  if (input) {
    input.addEventListener('change', () => {
      const now = new Set(chosenFiles(form));
      for (const file of Array.from(kept.keys())) if (!now.has(file)) discard(file);
    });
  }

  async function stillHeld(token) {
    try {
      const response = await request(`${url}/${token}`, 'GET', csrfToken);
      const body = response.status === 200 ? await response.json() : null;
      return Boolean(body && body.complete === true);
    } catch {
      return false;
    }
  }

  async function uploadOne(pc, file, recipients, view, index, control) {
    let entry = kept.get(file);
    if (entry && entry.token && !(await stillHeld(entry.token))) entry.token = null;
    if (!entry) {
      entry = { sealer: await pc.attachment.create(file, recipients), token: null };
      kept.set(file, entry);
    }
    if (!entry.token) {
      const upload = createUpload(entry.sealer, {
        url,
        csrf: csrfToken,
        onProgress: (p) => view.progress(index, p),
        onConnection: (up) => view.connection(up),
      });
      control.current = upload;
      if (control.cancelled) upload.cancel();
      if (control.paused) upload.pause(); // Pause pressed between two files stays pressed
      entry.token = await upload.run();
      control.current = null;
    }
    view.done(index);
    return { token: entry.token, metadata: entry.sealer.metadata() };
  }

  async function send(pc, recipients, csrf) {
    csrfToken = csrf;
    const files = chosenFiles(form);
    const div = container(form);
    if (!files.length) {
      div.replaceChildren();
      div.hidden = true;
      return [];
    }
    checkLimits(files, limits, msg);
    const control = { current: null, cancelled: false, paused: false };
    const view = createUploadView(div, files, msg, {
      pause: () => {
        control.paused = true;
        if (control.current) control.current.pause();
      },
      resume: () => {
        control.paused = false;
        if (control.current) control.current.resume();
      },
      cancel: () => {
        control.cancelled = true;
        if (control.current) control.current.cancel();
      },
    });
    if (input) input.disabled = true;
    try {
      const out = [];
      for (let i = 0; i < files.length; i++) {
        out.push(await uploadOne(pc, files[i], recipients, view, i, control));
      }
      return out;
    } catch (err) {
      if (err instanceof UploadCancelled) {
        for (const file of Array.from(kept.keys())) discard(file);
        throw new AttachmentProblem(msg.cancelled);
      }
      if (err instanceof UploadFailed) throw new AttachmentProblem(err.serverMessage || msg.failed);
      if (err && (err.name === 'SizeMismatch' || err.name === 'NotReadableError')) {
        for (const file of files) discard(file);
        throw new AttachmentProblem(msg.changed);
      }
      throw err;
    } finally {
      view.finish();
      if (input) input.disabled = false;
    }
  }

  return {
    send,
    /** The report was stored with its attachments: nothing is left to reuse. */
    sent() {
      kept.clear();
    },
  };
}
