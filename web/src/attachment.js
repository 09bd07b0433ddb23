// An attachment sealed from a File in one pass (docs/FORMAT.md, "The attachment
// content"): the content is
//
//   "UNRPFILE" ‖ S (8 bytes, big-endian) ‖ the S file bytes ‖ metadata JSON
//
// and the metadata's one value that needs the whole file, its SHA-256, has a
// fixed length, so the content's length (and the envelope's) is known before
// the file is read. The file is read with File.slice, at most one upload's
// worth (16 chunks, 1 MiB) at a time, never whole; the SHA-256 is advanced
// over each file byte exactly once, the first time it is read.
//
// An upload that breaks off resumes from the server's offset: `bytes(offset,
// length)` seals the chunks it covers again from the content key and header
// kept in memory. Sealing a chunk again gives the same ciphertext only if the
// file gave the same bytes; each chunk's GCM tag is kept (16 bytes a chunk),
// and a chunk whose tag comes out different is never handed out: two
// different plaintexts under one nonce would betray both.

import { sha256 } from '@noble/hashes/sha2.js';
import { ascii, systemRandom, toHex } from './bytes.js';
import { CHUNK_SIZE, LENGTH_PREFIX_SIZE, SizeMismatch, TAG_SIZE, createSealer } from './envelope.js';

export const FILE_MAGIC = ascii('UNRPFILE');
export const ATTACHMENT_TYPE = 'reprisal-attachment';
export const ATTACHMENT_VERSION = 1;
export const PREFIX_SIZE = 16; // magic and S
export const MAX_NAME = 1000; // code points
export const MAX_MEDIA_TYPE = 255; // code points
export const MAX_METADATA = 65536;
export const UNNAMED = 'unnamed';
const STRIDE = CHUNK_SIZE + TAG_SIZE;
const HASH_PLACEHOLDER = '0'.repeat(64);
const HASH_PIECE = 65536;
const BUSY_MS = 40; // hashing longer than this without a pause would make the page stutter

// The SHA-256 is pure JS (WebCrypto cannot hash in pieces); with the JIT off it
// runs at about 0.5 to 1 MB/s, so it hands the page back every BUSY_MS for
// clicks and repaints. A MessageChannel turn, unlike setTimeout, is not clamped.
function yieldToPage() {
  if (typeof MessageChannel !== 'function') return new Promise((resolve) => setTimeout(resolve, 0));
  return new Promise((resolve) => {
    const channel = new MessageChannel();
    channel.port1.onmessage = () => {
      channel.port1.close();
      resolve();
    };
    channel.port2.postMessage(null);
  });
}

/** Feed `data` to `hasher` in pieces, pausing whenever it has kept the page busy too long. */
async function hashInPieces(hasher, data) {
  let since = Date.now();
  for (let at = 0; at < data.length; at += HASH_PIECE) {
    hasher.update(data.subarray(at, at + HASH_PIECE));
    if (Date.now() - since > BUSY_MS) {
      await yieldToPage();
      since = Date.now();
    }
  }
}

const isLoneSurrogate = (c) => c.length === 1 && c.charCodeAt(0) >= 0xd800 && c.charCodeAt(0) <= 0xdfff;

/** The name recorded: cut to 1000 code points, lone surrogates replaced by U+FFFD, "unnamed" if empty. */
export function cleanName(name) {
  const points = Array.from(String(name)).slice(0, MAX_NAME);
  return points.map((c) => (isLoneSurrogate(c) ? '\ufffd' : c)).join('') || UNNAMED;
}

/** The media type recorded: "" when over 255 code points or not Unicode text (a cut type would name another). */
export function cleanMediaType(type) {
  const points = Array.from(String(type));
  return points.length > MAX_MEDIA_TYPE || points.some(isLoneSurrogate) ? '' : points.join('');
}

/**
 * What the metadata says about `file` before it is read: a random id, the
 * browser's type and name as portal/attachment.py's clean_media_type and
 * clean_name record them, and the size.
 */
export function describeFile(file, random = systemRandom) {
  const size = file.size;
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError('the file has no valid size');
  return {
    id: toHex(random(16)),
    media_type: cleanMediaType(file.type || ''),
    name: cleanName(file.name || ''),
    size,
  };
}

/**
 * The metadata's exact UTF-8 bytes: keys sorted, no whitespace, non-ASCII
 * unescaped, as Python's json.dumps(sort_keys=True, separators=(",", ":"),
 * ensure_ascii=False) writes them.
 */
export function metadataBytes(info, sha256Hex) {
  const meta = {
    id: info.id,
    media_type: info.media_type,
    name: info.name,
    sha256: sha256Hex,
    size: info.size,
    type: ATTACHMENT_TYPE,
    version: ATTACHMENT_VERSION,
  };
  return new TextEncoder().encode(JSON.stringify(meta));
}

function writeU64(out, value, at = 0) {
  const view = new DataView(out.buffer, out.byteOffset);
  view.setUint32(at, Math.floor(value / 2 ** 32));
  view.setUint32(at + 4, value % 2 ** 32);
}

/** The 16 bytes before the file: the magic and S, big-endian. */
function prefixBytes(size) {
  const out = new Uint8Array(PREFIX_SIZE);
  out.set(FILE_MAGIC, 0);
  writeU64(out, size, 8);
  return out;
}

async function readSlice(file, start, end) {
  if (end <= start) return new Uint8Array(0);
  const data = new Uint8Array(await file.slice(start, end).arrayBuffer());
  if (data.length !== end - start) {
    throw new SizeMismatch(`the file gave ${data.length} bytes where ${end - start} were expected`);
  }
  return data;
}

/** Copy the part of `source` (content bytes from `at`) that falls in [from, from + out.length). */
function place(out, from, source, at) {
  const start = Math.max(from, at);
  const end = Math.min(from + out.length, at + source.length);
  if (end > start) out.set(source.subarray(start - at, end - at), start - from);
}

/**
 * Start sealing `file` (a File or Blob with a name) to `recipients` with path
 * "browser". Resolves to `{totalSize, headerSize, chunkCount, info,
 * bytes(offset, length), metadata()}`: `bytes` resolves to envelope bytes
 * [offset, offset + length) and must first be asked for the chunks in order
 * (any earlier range may then be asked for again); `metadata()` gives the
 * report document's entry once every file byte has been sealed.
 * `options.random` and `options.backend` are as for envelope.createSealer.
 */
export async function createAttachmentSealer(file, recipients, options = {}) {
  const info = describeFile(file, options.random);
  const size = info.size;
  const metaSize = metadataBytes(info, HASH_PLACEHOLDER).length;
  if (metaSize > MAX_METADATA) throw new RangeError('the file name is too long to describe');
  const contentSize = PREFIX_SIZE + size + metaSize;
  const sealer = await createSealer(contentSize, recipients, 'browser', options);
  const prefix = prefixBytes(size);
  const hasher = sha256.create();
  const tags = new Uint8Array(sealer.chunkCount * TAG_SIZE);
  let hashed = 0; // file bytes already in `hasher`
  let sealedChunks = 0; // chunks sealed at least once, so their tags are known
  let digest = null;
  let meta = null;

  /** Padded plaintext of chunks [first, last): file bytes read once, hashed once. */
  async function plain(first, last) {
    const p0 = first * CHUNK_SIZE;
    const out = new Uint8Array(Math.min(last * CHUNK_SIZE, sealer.paddedSize) - p0);
    const c0 = p0 - LENGTH_PREFIX_SIZE; // content offset of out[0]
    const f0 = Math.min(Math.max(c0 - PREFIX_SIZE, 0), size);
    const f1 = Math.min(Math.max(c0 + out.length - PREFIX_SIZE, 0), size);
    const data = await readSlice(file, f0, f1);
    if (f1 > hashed) {
      await hashInPieces(hasher, data.subarray(hashed - f0));
      hashed = f1;
    }
    if (hashed === size && !digest) {
      digest = toHex(hasher.digest());
      meta = metadataBytes(info, digest);
    }
    if (first === 0) writeU64(out, contentSize); // the envelope's length prefix
    place(out, c0, prefix, 0);
    place(out, c0, data, PREFIX_SIZE + f0);
    if (c0 + out.length > PREFIX_SIZE + size) place(out, c0, meta, PREFIX_SIZE + size);
    return out;
  }

  /** The sealed chunks [first, last) as one array, each checked against its known tag. */
  async function sealed(first, last) {
    if (first > sealedChunks) throw new RangeError('the chunks must first be sealed in order');
    const padded = await plain(first, last);
    const parts = [];
    for (let i = first; i < last; i++) {
      const at = (i - first) * CHUNK_SIZE;
      parts.push(sealer.sealChunk(i, padded.subarray(at, Math.min(at + CHUNK_SIZE, padded.length))));
    }
    const chunks = await Promise.all(parts);
    chunks.forEach((c, k) => keepTag(first + k, c.subarray(c.length - TAG_SIZE)));
    const out = new Uint8Array(chunks.reduce((n, c) => n + c.length, 0));
    chunks.reduce((at, c) => (out.set(c, at), at + c.length), 0);
    return out;
  }

  function keepTag(index, tag) {
    const at = index * TAG_SIZE;
    if (index < sealedChunks) {
      for (let i = 0; i < TAG_SIZE; i++) {
        if (tags[at + i] !== tag[i]) {
          throw new SizeMismatch('the file changed while it was being sent; choose it again');
        }
      }
    } else {
      tags.set(tag, at);
      sealedChunks = index + 1;
    }
  }

  /** Envelope bytes [offset, offset + length), sealing the chunks they fall in. */
  async function range(offset, length) {
    const end = Math.min(offset + length, sealer.totalSize);
    if (!(Number.isSafeInteger(offset) && offset >= 0 && end > offset)) {
      throw new RangeError(`no envelope bytes at ${offset} (+${length})`);
    }
    const out = new Uint8Array(end - offset);
    place(out, offset, sealer.header, 0);
    if (end <= headerSize) return out;
    const first = Math.floor((Math.max(offset, headerSize) - headerSize) / STRIDE);
    const last = Math.min(Math.ceil((end - headerSize) / STRIDE), sealer.chunkCount);
    place(out, offset, await sealed(first, last), headerSize + first * STRIDE);
    return out;
  }

  const headerSize = sealer.header.length;
  let queue = Promise.resolve(); // one range at a time: the hash advances in file order
  return {
    info,
    headerSize,
    chunkCount: sealer.chunkCount,
    totalSize: sealer.totalSize,
    contentSize,

    /**
     * Where a request starting at `offset` should end to carry at most `max`
     * bytes and finish on a chunk boundary (so a resume re-seals whole chunks
     * only): the furthest such boundary, else `offset + max` if none fits.
     */
    rangeEnd(offset, max) {
      const total = sealer.totalSize;
      if (offset + max >= total) return total;
      if (offset + max < headerSize) return offset + max;
      const boundary = headerSize + Math.floor((offset + max - headerSize) / STRIDE) * STRIDE;
      return boundary > offset ? boundary : offset + max;
    },

    /** Envelope bytes [offset, offset + length); calls are served one after the other. */
    bytes(offset, length) {
      const run = queue.then(() => range(offset, length));
      queue = run.catch(() => {});
      return run;
    },

    /** The report document's entry for this file (only once the whole file is sealed). */
    metadata() {
      if (!digest || sealedChunks < sealer.chunkCount) throw new Error('the file is not sealed yet');
      return { id: info.id, media_type: info.media_type, name: info.name, sha256: digest, size };
    },
  };
}
