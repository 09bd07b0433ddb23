// The resumable upload client (docs/UPLOADS.md): one sealed attachment sent
// to the server in PATCH requests of whole envelope chunks, resumed from the
// server's committed offset after a dropped connection, an error or a server
// restart. No crypto and no DOM here: the bytes come from a `source`
// (attachment.js's sealer) and the network from an injected `fetch`, so node
// tests drive it against a fake server.
//
// - POST /uploads (Upload-Length) creates the upload; 4xx/507/503 there are
//   final, with the server's message (a dropped connection is retried);
// - PATCH /uploads/<token> (Upload-Offset) sends the next range; on a network
//   error, a timeout, a 5xx or a 409 the client asks GET /uploads/<token> for
//   the committed offset, waiting longer each time (1 s, 2 s, ... 30 s), and
//   goes on from there: the source seals the chunks from that offset again;
//   after a timeout the requests are made smaller (down to one chunk), so a
//   very slow circuit still gets each one through;
// - 404 (expired or unknown upload) starts a new upload from zero, a few times;
// - pause() aborts the request in flight; resume() asks for the offset first;
//   cancel() stops and sends DELETE.

const MAX_CHUNK = 16 * (65536 + 16); // 16 envelope chunks, as the server announces
const DELAYS = [1000, 2000, 4000, 8000, 15000, 30000];
const REQUEST_TIMEOUT = 180000; // a request that makes no answer in 3 minutes is dropped
const MIN_REQUEST = 65536 + 16; // one envelope chunk
const RESTARTS = 3;

/** A final refusal: `message` is the server's (already translated) or null. */
export class UploadFailed extends Error {
  constructor(message, status) {
    super(message || `the upload failed (${status})`);
    this.name = 'UploadFailed';
    this.status = status;
    this.serverMessage = message || null;
  }
}

/** The upload was cancelled by the submitter. */
export class UploadCancelled extends Error {
  constructor() {
    super('the upload was cancelled');
    this.name = 'UploadCancelled';
  }
}

class Dropped extends Error {} // network error, timeout, 5xx: wait, ask for the offset, go on
class Conflict extends Error {} // 409, or all sent but not confirmed: ask for the offset now

function defaultSleep(ms, signal) {
  return new Promise((resolve) => {
    const timer = setTimeout(resolve, ms);
    if (signal) signal.addEventListener('abort', () => (clearTimeout(timer), resolve()), { once: true });
  });
}

async function readJson(response) {
  try {
    const body = await response.json();
    return body && typeof body === 'object' ? body : {};
  } catch {
    return {};
  }
}

function messageOf(body) {
  return typeof body.error === 'string' && body.error.trim() ? body.error : null;
}

/**
 * An upload of `source` ({totalSize, bytes(offset, length), rangeEnd(offset,
 * max)}). Options: `fetch`, `csrf` (the page's token), `url` (default
 * "/uploads"), `sleep(ms, signal)`, `now()`, `onProgress({offset, length})`,
 * `onConnection(up)` (false when the connection drops, true when it is back).
 * Call `run()` once; it resolves to the token when the server says complete.
 */
export function createUpload(source, options) {
  const fetchFn = options.fetch || globalThis.fetch.bind(globalThis);
  const sleep = options.sleep || defaultSleep;
  const base = options.url || '/uploads';
  const timeout = options.timeout || REQUEST_TIMEOUT;
  const length = source.totalSize;
  const state = { token: null, offset: 0, complete: false, paused: false, cancelled: false };
  const stats = { requests: 0, bytesSent: 0, retries: 0, restarts: 0 };
  let maxChunk = MAX_CHUNK;
  let highest = 0; // the furthest byte ever sent: a server offset beyond it is a lie
  let inflight = null; // AbortController of the request in flight
  let wake = null; // resolves the wait of a paused upload
  let down = false;
  let failures = 0;
  let conflicts = 0; // 409s in a row: a server that keeps refusing is asked more slowly
  const stopper = new AbortController(); // cancel() cuts a wait short

  function connection(up) {
    if (down === !up) return;
    down = !up;
    if (options.onConnection) options.onConnection(up);
  }

  function progress() {
    if (options.onProgress) options.onProgress({ offset: state.offset, length });
  }

  async function request(method, url, headers = {}, body = undefined) {
    if (state.cancelled) throw new UploadCancelled();
    inflight = new AbortController();
    const controller = inflight;
    const timer = setTimeout(() => {
      controller.abort();
      if (method === 'PATCH') maxChunk = Math.max(MIN_REQUEST, Math.floor(maxChunk / 2));
    }, timeout);
    stats.requests += 1;
    try {
      return await fetchFn(url, {
        method,
        body,
        credentials: 'same-origin',
        cache: 'no-store',
        redirect: 'error',
        referrerPolicy: 'no-referrer',
        headers: { 'X-CSRFToken': options.csrf || '', ...headers },
        signal: controller.signal,
      });
    } catch {
      if (state.cancelled) throw new UploadCancelled();
      throw new Dropped();
    } finally {
      clearTimeout(timer);
      if (inflight === controller) inflight = null;
    }
  }

  async function backoff() {
    const delay = DELAYS[Math.min(failures, DELAYS.length - 1)];
    failures += 1;
    stats.retries += 1;
    await sleep(delay, stopper.signal);
  }

  /** After a dropped request: say so and wait (unless the drop was a pause). */
  async function dropped() {
    if (state.paused || state.cancelled) return;
    connection(false);
    await backoff();
  }

  async function waitWhilePaused() {
    while (state.paused && !state.cancelled) await new Promise((resolve) => (wake = resolve));
    if (state.cancelled) throw new UploadCancelled();
  }

  function acceptOffset(body) {
    const offset = body.offset;
    if (!Number.isSafeInteger(offset) || offset < 0 || offset > length || offset > highest) {
      throw new UploadFailed(null, 'offset'); // the server claims bytes it was never sent
    }
    state.offset = offset;
    state.complete = body.complete === true && offset === length;
  }

  async function create() {
    for (;;) {
      await waitWhilePaused();
      let response;
      try {
        response = await request('POST', base, { 'Upload-Length': String(length) });
      } catch (err) {
        if (!(err instanceof Dropped)) throw err;
        await dropped();
        continue;
      }
      const body = await readJson(response);
      if (response.status !== 201) throw new UploadFailed(messageOf(body), response.status);
      if (typeof body.token !== 'string' || !/^[0-9a-f]{64}$/.test(body.token)) {
        throw new UploadFailed(null, 'token');
      }
      connection(true);
      failures = 0;
      state.token = body.token;
      state.offset = 0;
      highest = 0;
      if (Number.isSafeInteger(body.max_chunk) && body.max_chunk > 0) {
        maxChunk = Math.min(body.max_chunk, MAX_CHUNK);
      }
      progress();
      return;
    }
  }

  /** Ask the server for the committed offset until it answers. */
  async function sync() {
    for (;;) {
      await waitWhilePaused();
      let response;
      try {
        response = await request('GET', `${base}/${state.token}`);
      } catch (err) {
        if (!(err instanceof Dropped)) throw err;
        await dropped();
        continue;
      }
      if (response.status === 404) return restart();
      const body = await readJson(response);
      if (response.status >= 500) {
        await dropped();
        continue;
      }
      if (response.status !== 200) throw new UploadFailed(messageOf(body), response.status);
      connection(true);
      failures = 0;
      acceptOffset(body);
      progress();
      return;
    }
  }

  async function restart() {
    stats.restarts += 1;
    if (stats.restarts > RESTARTS) throw new UploadFailed(null, 404);
    state.token = null;
    await create();
  }

  // The next range is sealed while the current one is on the wire, so reading,
  // hashing and sealing (slow with the JIT off) overlap the network.
  let ahead = null; // {offset, end, bytes: Promise}

  function sealRange(start) {
    if (ahead && ahead.offset === start) {
      const got = ahead;
      ahead = null;
      return got;
    }
    const end = source.rangeEnd(start, maxChunk);
    const bytes = source.bytes(start, end - start);
    bytes.catch(() => {}); // a range sealed ahead and never used must not report an error
    return { offset: start, end, bytes };
  }

  /** Send the next range; returns normally, or throws Dropped to have the offset asked for. */
  async function sendNext() {
    const start = state.offset;
    const { end, bytes } = sealRange(start);
    const body = await bytes;
    if (end < length) ahead = sealRange(end);
    highest = Math.max(highest, end);
    stats.bytesSent += body.length;
    const response = await request('PATCH', `${base}/${state.token}`, {
      'Upload-Offset': String(start),
      'Content-Type': 'application/octet-stream',
    }, body);
    const answer = await readJson(response);
    if (response.status === 200) {
      connection(true);
      failures = 0;
      conflicts = 0;
      acceptOffset(answer);
      progress();
      return;
    }
    if (response.status === 409) throw new Conflict();
    if (response.status >= 500) throw new Dropped();
    if (response.status === 404) return restart();
    throw new UploadFailed(messageOf(answer), response.status);
  }

  async function run() {
    await create();
    while (!state.complete) {
      await waitWhilePaused();
      try {
        if (state.offset < length) await sendNext();
        else await backoff(); // all sent but not confirmed: ask again, slower each time
        if (!state.complete && state.offset >= length) throw new Conflict();
      } catch (err) {
        if (err instanceof Dropped) await dropped();
        else if (!(err instanceof Conflict)) throw err;
        else if (++conflicts > 2) await backoff();
        await sync();
      }
    }
    connection(true);
    return state.token;
  }

  let running = null;
  return {
    state,
    stats,
    length,
    /** Resolves to the token once the server holds the whole envelope. */
    run() {
      if (!running) running = run();
      return running;
    },
    pause() {
      if (state.complete || state.cancelled) return;
      state.paused = true;
      if (inflight) inflight.abort();
    },
    resume() {
      state.paused = false;
      if (wake) wake();
      wake = null;
    },
    /** Stop, and ask the server to delete what it holds (best effort). */
    async cancel() {
      state.cancelled = true;
      stopper.abort();
      if (inflight) inflight.abort();
      if (wake) wake();
      if (!state.token) return;
      try {
        await fetchFn(`${base}/${state.token}`, {
          method: 'DELETE',
          credentials: 'same-origin',
          cache: 'no-store',
          redirect: 'error',
          referrerPolicy: 'no-referrer',
          headers: { 'X-CSRFToken': options.csrf || '' },
        });
      } catch {
        // the server deletes an upload nobody attaches when it expires
      }
    },
  };
}
