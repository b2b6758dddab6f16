import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import type { TableFormat } from '../data/index.js';
import type { Io } from './main.js';

/**
 * `medfit train <table> --deidentify`: the table profiled, then rewritten by the de-identification
 * plan of its profile (personal identifiers dropped, record numbers pseudonymised with
 * MEDFIT_DEID_KEY, ZIP codes to 3 digits, dates to the year, ages over 89 pooled) into a temporary
 * folder, which the caller trains on and removes. What was done to which column goes to stderr
 * (counts, never values).
 */
export async function deidentifiedTable(file: string, format: TableFormat | undefined, io: Io): Promise<{ path: string; cleanup: () => void }> {
  const { profileFile } = await import('../data/index.js');
  const { deidKey, Deidentifier, deidentifyTableFile, planTable } = await import('../privacy/index.js');
  const { key, generated } = deidKey(process.env);
  if (generated) io.stderr.write('medfit train: MEDFIT_DEID_KEY is not set; pseudonymising with a random key for this run only\n');
  const profile = await profileFile(file, { ...(format ? { format } : {}) });
  const dir = mkdtempSync(join(tmpdir(), 'medfit-deid-'));
  const path = join(dir, `${basename(file).replace(/\.[^.]*$/, '')}.${profile.format}`);
  try {
    const r = await deidentifyTableFile(file, path, { rules: planTable(profile.columns), deidentifier: new Deidentifier({ key }), format: profile.format, source: file });
    for (const c of r.report) if (c.action !== 'keep') io.stderr.write(`medfit train: de-identified column "${c.column}": ${c.action} (${c.reason})\n`);
  } catch (e) {
    rmSync(dir, { recursive: true, force: true });
    throw e;
  }
  return { path, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}
