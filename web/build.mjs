// Build the browser bundles into portal/static/dist/ (never committed):
//
//   form.js          the page controller (report.js inside), loaded with defer
//   replies.js       the replies page's controller, loaded with defer
//   followup.js      the follow-up page's controller, loaded with defer
//   crypto.js        envelope, receipt, backends: exposes self.PortalCrypto
//   aes-fallback.js  pure-JS AES-GCM/HKDF/HMAC, loaded only without crypto.subtle
//   manifest.json    {"<name>": {"path": "dist/<name>", "integrity": "sha384-..."}}
//
// The Flask templates read manifest.json to fill the SRI attributes. Run with
// `npm run build`; prints each file's raw and gzipped size.

import { createHash } from 'node:crypto';
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { gzipSync } from 'node:zlib';
import * as esbuild from 'esbuild';

const root = dirname(dirname(fileURLToPath(import.meta.url)));
export const DIST = join(root, 'portal', 'static', 'dist');

export const BUNDLES = {
  'form.js': 'web/src/form.js',
  'replies.js': 'web/src/replies.js',
  'followup.js': 'web/src/followup.js',
  'crypto.js': 'web/src/crypto-entry.js',
  'aes-fallback.js': 'web/src/fallback-entry.js',
};

export async function build({ quiet = false, out = DIST } = {}) {
  await rm(out, { recursive: true, force: true });
  await mkdir(out, { recursive: true });
  const manifest = {};
  const sizes = [];
  for (const [name, entry] of Object.entries(BUNDLES)) {
    await esbuild.build({
      entryPoints: [join(root, entry)],
      outfile: join(out, name),
      bundle: true,
      format: 'iife',
      platform: 'browser',
      target: 'es2020',
      minify: true,
      legalComments: 'eof', // keep the libraries' licence notices
      charset: 'utf8',
      logLevel: 'warning',
    });
    const bytes = await readFile(join(out, name));
    const integrity = 'sha384-' + createHash('sha384').update(bytes).digest('base64');
    manifest[name] = { path: `dist/${name}`, integrity };
    sizes.push({ name, raw: bytes.length, gzip: gzipSync(bytes, { level: 9 }).length });
  }
  await writeFile(join(out, 'manifest.json'), JSON.stringify(manifest, null, 2) + '\n');
  if (!quiet) {
    for (const s of sizes) console.log(`${s.name.padEnd(16)} ${String(s.raw).padStart(7)} B  ${String(s.gzip).padStart(6)} B gzipped`);
    const page = sizes.filter((s) => s.name === 'form.js' || s.name === 'crypto.js').reduce((a, s) => a + s.gzip, 0);
    const all = page + sizes.filter((s) => s.name === 'aes-fallback.js').reduce((a, s) => a + s.gzip, 0);
    console.log(`form.js + crypto.js: ${page} B gzipped; with aes-fallback.js: ${all} B`);
  }
  return { manifest, sizes };
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  await build();
}
