import { createHash } from 'node:crypto';
import { Readable } from 'node:stream';
import { Errors, streamToFileAtomic, type ColumnType } from '../core/index.js';
import { csvField } from '../data/index.js';
import { FeatureBuilder, type FeatureTable } from './features.js';
import { readResources } from './read.js';
import type { FeatureSpec, ResourceItem } from './types.js';

/**
 * What de-identifies resources on their way in (the privacy room's `Deidentifier` fits): the FHIR
 * room does not import privacy (they are siblings), so the importer takes the two things it needs.
 */
export interface ResourceDeidentifier {
  /**
   * A reader's item de-identified: a copy of its resource (pseudonymous ids and references, dates
   * shifted per patient; messages about a bad element named by the item's source and place), and
   * its Bundle fullUrl mapped as references to it are, so they still meet.
   */
  item(item: ResourceItem): ResourceItem;
  /** The patient's date offset in days, from its pseudonymous key (the index date moves with the patient's dates). */
  shiftDays(patientKey: string): number;
}

/** Options of `importFhir`. */
export interface ImportOptions {
  spec: FeatureSpec;
  /** The CSV file to write (atomically: the whole table or nothing). */
  out: string;
  /** De-identify every resource before it is used (absent: the resources as they are). */
  deidentifier?: ResourceDeidentifier | undefined;
  /** Largest CSV written, in bytes (a server's upload limit); past it a 413 and nothing written. */
  maxBytes?: number;
  signal?: AbortSignal | undefined;
}

/** What an import wrote. */
export interface ImportResult {
  rows: number;
  columns: string[];
  /** Resources read (of every type, used or not). */
  resources: number;
  bytes: number;
  sha256: string;
  /**
   * What the table lacks, for the user to check the spec against the export: a feature column no
   * patient has a value of (a code the export does not use, a window that misses every value), a
   * label that no patient has (no resources of its kind in the input).
   */
  warnings: string[];
}

/**
 * FHIR resources (Bundles, bulk-export NDJSON; files or folders, gzip accepted) → a feature table
 * as CSV, one row per Patient, by the feature spec. Streams: resources are read, de-identified
 * and folded into per-patient aggregates one at a time, so memory grows with patients × features,
 * not with the export. A bad resource stops the import and nothing is written.
 */
export async function importFhir(inputs: string[], options: ImportOptions): Promise<ImportResult> {
  return importItems(readResources(inputs, options.signal ? { signal: options.signal } : {}), options);
}

/** `importFhir` over resources from any reader (an HTTP body's stream). */
export async function importItems(items: AsyncIterable<ResourceItem>, options: ImportOptions): Promise<ImportResult> {
  const d = options.deidentifier;
  // An onset date column would hold each patient's shifted dates: a model would learn from the
  // shifts, and predictions (on real dates) would not match training.
  const onset = (options.spec.conditions ?? []).findIndex((c) => c.as === 'onset');
  if (d && onset >= 0) {
    throw Errors.badData('the feature spec', `/conditions/${onset}/as: "onset" gives dates, which de-identification shifts by a different offset per patient; use "flag", or import without de-identification`);
  }
  const builder = new FeatureBuilder(options.spec, d ? { shiftDays: (key) => d.shiftDays(key) } : {});
  let resources = 0;
  let source = 'the input';
  for await (const item of items) {
    if (options.signal?.aborted) throw Errors.cancelled('the FHIR import');
    if (resources++ === 0) source = item.source;
    builder.add(d ? d.item(item) : item);
  }
  const table = builder.finish();
  if (table.rows.length === 0) throw Errors.badData(source, 'holds no Patient resource: a feature table has one row per Patient');
  const written = await writeCsv(options.out, table, options.maxBytes);
  return { rows: table.rows.length, columns: table.columns, resources, ...written, warnings: emptyColumns(table, options.spec) };
}

/** The table as CSV (numbers as JavaScript prints them, which read back exactly), its bytes hashed. */
async function writeCsv(path: string, t: FeatureTable, maxBytes = Infinity): Promise<{ bytes: number; sha256: string }> {
  const hash = createHash('sha256');
  let bytes = 0;
  await streamToFileAtomic(path, Readable.from(csvChunks(t)), (chunk) => {
    bytes += chunk.length;
    if (bytes > maxBytes) throw Errors.tooLarge(`the feature table is larger than the limit of ${maxBytes} bytes (MEDFIT_MAX_UPLOAD_MB)`);
    hash.update(chunk);
  });
  return { bytes, sha256: hash.digest('hex') };
}

function* csvChunks(t: FeatureTable): Generator<Buffer> {
  yield Buffer.from(t.columns.map(csvField).join(',') + '\n');
  let lines: string[] = [];
  for (const row of t.rows) {
    lines.push(row.map((v) => (v === null ? '' : typeof v === 'number' ? String(v) : csvField(v))).join(','));
    if (lines.length === 1000) {
      yield Buffer.from(lines.join('\n') + '\n');
      lines = [];
    }
  }
  if (lines.length) yield Buffer.from(lines.join('\n') + '\n');
}

/** The warnings of `ImportResult.warnings`: columns without a value for any patient, a label without a positive. */
function emptyColumns(t: FeatureTable, spec: FeatureSpec): string[] {
  const warnings: string[] = [];
  const label = spec.label?.name;
  for (let c = 1; c < t.columns.length; c++) {
    const name = t.columns[c]!;
    let values = 0;
    let positives = 0;
    for (const row of t.rows) {
      const v = row[c];
      if (v !== null && v !== undefined && v !== '') {
        values++;
        if (v === 1) positives++;
      }
    }
    if (values === 0) warnings.push(`column "${name}" has no value for any patient: check its code${name === label ? '' : ' and window'} against the export`);
    else if (name === label && positives === 0) warnings.push(`label "${name}" is 0 for every patient: does the input hold the resources it is read from?`);
  }
  return warnings;
}

/**
 * How training treats the columns of a table a feature spec made: `patient` is an identifier
 * (pseudonymous or not, never a feature, whatever its values look like to schema inference), and
 * the label, an outcome after the index date, is never a feature of a model of another target.
 */
export function trainingRoles(spec: FeatureSpec, target: string | string[]): { types: Record<string, ColumnType>; ignore: string[] } {
  const label = spec.label?.name;
  const targets = Array.isArray(target) ? target : [target];
  return { types: { patient: 'identifier' }, ignore: label !== undefined && !targets.includes(label) ? [label] : [] };
}
