// The attachments' progress inside #upload-progress (the form page gives an
// empty <div id="upload-progress" hidden aria-live="polite">): per file a
// <progress>, bytes sent of the total, speed and time left; Pause/Resume and
// Cancel buttons; a plain message when the connection drops and when it
// comes back. Built with DOM calls and textContent only (strict CSP).
//
// Every sentence comes from the page so the server can translate it: the
// data-msg-* attributes of #upload-strings (templates/source/_upload_strings.html)
// or of #upload-progress itself, with the English defaults below. Numbers and
// units are written by Intl.NumberFormat in the page's language.

export const DEFAULTS = {
  uploading: 'Encrypting and sending the files. Keep this page open.',
  figures: '{sent} of {total}, {speed} per second, about {time} left',
  figuresShort: '{sent} of {total}',
  waiting: 'Waiting',
  done: 'Sent',
  pause: 'Pause',
  resume: 'Resume',
  cancel: 'Cancel the upload',
  paused: 'Paused. Nothing is being sent; press Resume to carry on from where it stopped.',
  lost: 'The connection to the portal was lost. Keep this page open: the upload carries on by itself when the connection comes back.',
  back: 'The connection is back; the upload carries on.',
  cancelled: 'The upload was cancelled and the report was not sent. You can send it again.',
  changed: 'A file changed on your device while it was being sent, so nothing was sent. Choose the files again and send the report again.',
  failed: 'A file could not be sent, so the report was not sent. Try again later.',
  tooMany: 'You can attach at most {max} files to one report. Remove some and send the report again.',
  tooLarge: 'The file {name} is larger than this portal accepts ({max}), so nothing was sent. Remove it, or split it into parts, and send the report again.',
  tooMuch: 'Together the files are larger than this portal accepts ({max} in all), so nothing was sent. Remove some and send the report again.',
};

/** The translated sentences: #upload-strings, then #upload-progress, then the defaults. */
export function uploadMessages(doc = document) {
  const sources = ['upload-strings', 'upload-progress']
    .map((id) => doc.getElementById(id))
    .filter(Boolean)
    .map((el) => el.dataset || {});
  const out = {};
  for (const [key, value] of Object.entries(DEFAULTS)) {
    const name = 'msg' + key[0].toUpperCase() + key.slice(1);
    const found = sources.find((d) => d[name]);
    out[key] = found ? found[name] : value;
  }
  return out;
}

/** `template` with each {name} replaced by `values[name]`. */
export function fill(template, values) {
  return template.replace(/\{(\w+)\}/g, (all, name) => (name in values ? String(values[name]) : all));
}

function formatter(lang, unit, digits) {
  try {
    return new Intl.NumberFormat(lang || undefined, {
      style: 'unit', unit, unitDisplay: unit.endsWith('byte') ? 'short' : 'long', maximumFractionDigits: digits,
    });
  } catch {
    return { format: (n) => `${n} ${unit}` };
  }
}

/** A byte count in B, kB, MB or GB (decimal), in the page's language. */
export function formatBytes(n, lang) {
  const units = [['gigabyte', 1e9], ['megabyte', 1e6], ['kilobyte', 1e3]];
  for (const [unit, size] of units) {
    if (n >= size) return formatter(lang, unit, n >= 100 * size ? 0 : 1).format(n / size);
  }
  return formatter(lang, 'byte', 0).format(n);
}

/** A duration in seconds, minutes or hours, rounded up, in the page's language. */
export function formatDuration(seconds, lang) {
  if (seconds < 60) return formatter(lang, 'second', 0).format(Math.max(1, Math.ceil(seconds)));
  if (seconds < 3600) return formatter(lang, 'minute', 0).format(Math.ceil(seconds / 60));
  return formatter(lang, 'hour', 1).format(Math.ceil(seconds / 360) / 10);
}

/** Bytes per second over the last `window` ms of (time, offset) samples; null if unknown. */
export function rateOf(samples, window = 10000) {
  if (samples.length < 2) return null;
  const last = samples[samples.length - 1];
  const first = samples.find((s) => last.t - s.t <= window) || samples[0];
  const bytes = last.offset - first.offset;
  const ms = last.t - first.t;
  return ms > 0 && bytes > 0 ? (bytes * 1000) / ms : null;
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * Fill `container` with one row per file of `files` and the controls.
 * `handlers` = {pause, resume, cancel}. Returns the view's methods.
 */
export function createUploadView(container, files, msg, handlers, now = () => Date.now()) {
  const lang = document.documentElement.lang || undefined;
  container.replaceChildren();
  container.hidden = false;
  const intro = el('p', 'upload-intro', msg.uploading);
  const list = el('ul', 'upload-list');
  // The figures change several times a second: not read out one by one (the
  // container is a polite live region); each bar carries its file's name, and
  // the notice below is its own status region for the connection messages.
  list.setAttribute('aria-live', 'off');
  const rows = files.map((file, index) => {
    const item = el('li', 'upload-item');
    const name = el('span', 'upload-name', file.name);
    name.id = `upload-name-${index}`;
    const bar = el('progress', 'upload-bar');
    bar.setAttribute('aria-labelledby', name.id);
    bar.max = 1;
    bar.value = 0;
    const figures = el('span', 'upload-figures', msg.waiting);
    item.append(name, bar, figures);
    list.append(item);
    return { bar, figures, samples: [] };
  });
  const notice = el('p', 'upload-notice');
  notice.setAttribute('role', 'status');
  notice.hidden = true;
  const controls = el('p', 'upload-controls');
  const pause = el('button', 'upload-pause', msg.pause);
  const resume = el('button', 'upload-resume', msg.resume);
  const cancel = el('button', 'upload-cancel', msg.cancel);
  for (const b of [pause, resume, cancel]) b.type = 'button';
  resume.hidden = true;
  controls.append(pause, resume, cancel);
  container.append(intro, list, notice, controls);

  const say = (text) => {
    notice.textContent = text || '';
    notice.hidden = !text;
  };
  pause.addEventListener('click', () => {
    pause.hidden = true;
    resume.hidden = false;
    say(msg.paused);
    handlers.pause();
    resume.focus();
  });
  resume.addEventListener('click', () => {
    resume.hidden = true;
    pause.hidden = false;
    say('');
    handlers.resume();
    pause.focus();
  });
  cancel.addEventListener('click', () => handlers.cancel());

  return {
    progress(index, { offset, length }) {
      const row = rows[index];
      row.samples.push({ t: now(), offset });
      if (row.samples.length > 200) row.samples.shift();
      row.bar.max = length;
      row.bar.value = offset;
      const rate = rateOf(row.samples);
      const values = { sent: formatBytes(offset, lang), total: formatBytes(length, lang) };
      if (rate && offset < length) {
        values.speed = formatBytes(rate, lang);
        values.time = formatDuration((length - offset) / rate, lang);
        row.figures.textContent = fill(msg.figures, values);
      } else {
        row.figures.textContent = fill(msg.figuresShort, values);
      }
    },
    done(index) {
      rows[index].bar.value = rows[index].bar.max;
      rows[index].figures.textContent = msg.done;
    },
    connection(up) {
      say(up ? msg.back : msg.lost);
    },
    /** The uploads are over (sent, failed or cancelled): the controls go. */
    finish() {
      controls.hidden = true;
      if (notice.textContent === msg.lost) say('');
    },
    clear() {
      container.replaceChildren();
      container.hidden = true;
    },
  };
}
