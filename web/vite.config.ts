/**
 * Builds the web app into web/dist: hashed asset names (cached for a year by `medfit serve`), and
 * a gzip and a Brotli copy of every text file beside it, so the server sends compressed bytes
 * without compressing on each request. `npm ci` runs this through the package's `prepare` script.
 */
import { readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { brotliCompressSync, constants, gzipSync } from 'node:zlib';
import { defineConfig, type Plugin } from 'vite';

const root = new URL('.', import.meta.url).pathname;
const outDir = join(root, 'dist');

function files(dir: string): string[] {
  return readdirSync(dir).flatMap((f) => (statSync(join(dir, f)).isDirectory() ? files(join(dir, f)) : [join(dir, f)]));
}

/** Writes `x.gz` and `x.br` beside each compressible file of the build. */
function precompress(): Plugin {
  return {
    name: 'medfit-precompress',
    apply: 'build',
    closeBundle() {
      for (const f of files(outDir)) {
        if (!/\.(js|css|html|svg|json|txt|map)$/.test(f)) continue;
        const bytes = readFileSync(f);
        writeFileSync(`${f}.gz`, gzipSync(bytes, { level: 9 }));
        writeFileSync(`${f}.br`, brotliCompressSync(bytes, { params: { [constants.BROTLI_PARAM_QUALITY]: 11, [constants.BROTLI_PARAM_SIZE_HINT]: bytes.length } }));
      }
    },
  };
}

export default defineConfig({
  root,
  base: '/',
  publicDir: join(root, 'public'),
  logLevel: 'warn',
  oxc: { jsx: { runtime: 'automatic', importSource: 'preact' } },
  build: { outDir, emptyOutDir: true, target: 'es2020', sourcemap: false, assetsInlineLimit: 0, reportCompressedSize: false },
  plugins: [precompress()],
});
