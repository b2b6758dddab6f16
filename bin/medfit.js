#!/usr/bin/env node
// The `medfit` command: runs the compiled CLI, built by `npm ci` through the `prepare` script.
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/bin.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('medfit: not built yet; run `npm ci` (or `npm run build`) in the medfit folder first\n');
  process.exit(1);
}
await import(entry.href);
