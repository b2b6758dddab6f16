import { readFileSync } from 'node:fs';

/** medfit's version, from package.json (two levels up from both src/core and dist/core). */
export const VERSION: string = (JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string }).version;
