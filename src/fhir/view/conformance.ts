/**
 * The SQL-on-FHIR v2 conformance runner: every `*.json` test file of a folder (format:
 * `{resources, tests: [{title, view, expect | expectCount | expectError, expectColumns?}]}`), each
 * test's view run over all the file's resources and compared with what it expects.
 *
 * Rows compare as a multiset (order ignored, as the suite's README says), each row as canonical
 * JSON; `expectColumns` must match the view's columns in order; `expectError` passes only when
 * compiling or running throws a `MedfitError` (anything else is a bug of ours and fails).
 * Files are read with `parseJsonKeepingDecimals`, so `1.0` in a resource keeps its precision.
 */
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Errors, isMedfitError } from '../../core/index.js';
import type { Resource, ViewRow } from '../types.js';
import { compileView, type CompileOptions } from './compile.js';
import { parseJsonKeepingDecimals } from './json.js';

/** What a conformance run found. */
export interface ConformanceResult {
  passed: number;
  failed: number;
  /** One line per failed test: `file.json: "title": what differed`. */
  failures: string[];
}

const isObject = (v: unknown): v is Record<string, unknown> => v !== null && typeof v === 'object' && !Array.isArray(v);

/**
 * Runs every test file in `dir` (sorted by name). A file that is not JSON or has no `tests` array
 * is a failure line of its own, except a JSON Schema (`tests.schema.json` ships beside the tests).
 */
export async function runConformance(dir: string, options: CompileOptions = {}): Promise<ConformanceResult> {
  let names: string[];
  try {
    names = (await readdir(dir)).filter((n) => n.endsWith('.json')).sort();
  } catch {
    throw Errors.badData(dir, 'cannot read this folder of conformance tests');
  }
  const result: ConformanceResult = { passed: 0, failed: 0, failures: [] };
  for (const name of names) {
    let doc: unknown;
    try {
      doc = parseJsonKeepingDecimals(await readFile(join(dir, name), 'utf8'), name);
    } catch (e) {
      result.failed++;
      result.failures.push(`${name}: ${isMedfitError(e) ? e.message : 'cannot be read'}`);
      continue;
    }
    if (isObject(doc) && doc.tests === undefined && (doc.$schema !== undefined || doc.$id !== undefined)) continue;
    if (!isObject(doc) || !Array.isArray(doc.tests) || !Array.isArray(doc.resources)) {
      result.failed++;
      result.failures.push(`${name}: not a conformance test file (needs "resources" and "tests" arrays)`);
      continue;
    }
    const resources = doc.resources as Resource[];
    doc.tests.forEach((t, i) => {
      const title = isObject(t) && typeof t.title === 'string' ? t.title : `test ${i}`;
      const problem = isObject(t) ? runTest(t, resources, name, options) : 'not an object';
      if (problem === undefined) result.passed++;
      else {
        result.failed++;
        result.failures.push(`${name}: ${JSON.stringify(title)}: ${problem}`);
      }
    });
  }
  return result;
}

/** Runs one test; returns what differed, or undefined when it passed. */
function runTest(t: Record<string, unknown>, resources: Resource[], file: string, options: CompileOptions): string | undefined {
  const wantError = t.expectError === true;
  let rows: ViewRow[];
  let columns: string[];
  try {
    const view = compileView(t.view, file, options);
    columns = view.columns.map((c) => c.name);
    rows = [];
    for (const r of resources) {
      for (const row of view.run(r)) rows.push(row);
    }
  } catch (e) {
    if (!isMedfitError(e)) return `threw an internal error: ${e instanceof Error ? e.message : String(e)}`;
    return wantError ? undefined : `unexpected error: ${e.message}`;
  }
  if (wantError) return `expected an error, got ${rows.length} row(s)`;
  if (Array.isArray(t.expectColumns)) {
    const want = t.expectColumns.join(', ');
    const got = columns.join(', ');
    if (want !== got) return `columns (${got}) instead of (${want})`;
    for (const row of rows) {
      if (Object.keys(row).join(', ') !== want) return `a row's keys are (${Object.keys(row).join(', ')}), not in column order (${want})`;
    }
  }
  if (typeof t.expectCount === 'number' && rows.length !== t.expectCount) return `${rows.length} row(s) instead of ${t.expectCount}`;
  if (Array.isArray(t.expect)) return compareRows(rows, t.expect);
  if (typeof t.expectCount !== 'number') return 'the test has neither expect, expectCount nor expectError';
  return undefined;
}

/** Multiset comparison of rows as canonical JSON; says the first extra or missing row. */
function compareRows(got: ViewRow[], want: unknown[]): string | undefined {
  const counts = new Map<string, number>();
  for (const w of want) {
    const k = canonical(w);
    counts.set(k, (counts.get(k) ?? 0) + 1);
  }
  const extra: string[] = [];
  for (const g of got) {
    const k = canonical(g);
    const c = counts.get(k);
    if (c === undefined || c === 0) extra.push(k);
    else counts.set(k, c - 1);
  }
  const missing = [...counts].filter(([, c]) => c > 0).map(([k]) => k);
  if (extra.length === 0 && missing.length === 0) return undefined;
  const parts = [`${got.length} row(s), expected ${want.length}`];
  if (extra.length > 0) parts.push(`unexpected ${clip(extra[0]!)}`);
  if (missing.length > 0) parts.push(`missing ${clip(missing[0]!)}`);
  return parts.join('; ');
}

const clip = (s: string): string => (s.length > 200 ? `${s.slice(0, 197)}...` : s);

/** JSON with object keys sorted (arrays keep their order); precise decimals as their numbers. */
function canonical(v: unknown): string {
  if (v === null || typeof v !== 'object') return JSON.stringify(v) ?? 'undefined';
  const j = (v as { toJSON?: () => unknown }).toJSON;
  if (typeof j === 'function') return canonical(j.call(v));
  if (Array.isArray(v)) return `[${v.map(canonical).join(',')}]`;
  const keys = Object.keys(v).sort();
  return `{${keys.map((k) => `${JSON.stringify(k)}:${canonical((v as Record<string, unknown>)[k])}`).join(',')}}`;
}
