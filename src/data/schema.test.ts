import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Cell } from '../core/index.js';
import { MedfitError } from '../core/index.js';
import type { Table } from './table.js';
import { readTable, tableFromRows } from './read.js';
import { inferSchema, nameWords } from './schema.js';

const FIXTURES = join(import.meta.dirname, '../../test/fixtures');

function table(columns: Record<string, Cell[]>): Table {
  const names = Object.keys(columns);
  const n = columns[names[0]!]!.length;
  const rows = Array.from({ length: n }, (_, i) => names.map((c) => columns[c]![i]!));
  return tableFromRows(names, rows, { source: 't.csv', format: 'csv', lines: rows.map((_, i) => i + 2) });
}
const range = (n: number, f: (i: number) => Cell): Cell[] => Array.from({ length: n }, (_, i) => f(i));
const typeOf = (s: ReturnType<typeof inferSchema>, name: string) => s.schema.columns.find((c) => c.name === name)!;

describe('inferSchema', () => {
  it('detects identifiers by name, by row counter, and by unique codes', () => {
    const s = inferSchema(
      table({
        patient_id: range(30, (i) => String(1000 + ((i * 7) % 30))),
        row: range(30, (i) => String(i + 1)),
        counter: range(30, (i) => String(i + 10)),
        code: range(30, (i) => `P-${String(i).padStart(5, '0')}`),
        visit_id: range(30, (i) => String(i % 5)), // repeated: a group key, still an identifier
        age: range(30, (i) => String(20 + (i % 7))),
      }),
    );
    for (const c of ['patient_id', 'row', 'counter', 'code', 'visit_id']) {
      expect(typeOf(s, c)).toMatchObject({ type: 'identifier', role: 'ignored', reason: 'identifier' });
    }
    expect(typeOf(s, 'age')).toMatchObject({ type: 'integer', role: 'feature' });
    expect(s.warnings.filter((w) => w.code === 'identifier').map((w) => w.column)).toHaveLength(5);
  });

  it("leaves out text columns whose names say they hold a person's identifiers, even when their values repeat, but not drug_name", () => {
    const surnames = ['Okafor', 'Haddad', 'Smith', 'Okafor', 'Nguyen'];
    const s = inferSchema(
      table({
        surname: range(30, (i) => surnames[i % 5]!),
        email: range(30, (i) => `p${i % 4}@example.org`),
        drug_name: range(30, (i) => (i % 2 ? 'metformin' : 'insulin')),
        age: range(30, (i) => String(20 + (i % 7))),
      }),
    );
    for (const c of ['surname', 'email']) expect(typeOf(s, c)).toMatchObject({ type: 'identifier', role: 'ignored' });
    expect(typeOf(s, 'drug_name')).toMatchObject({ type: 'categorical', role: 'feature' });
  });

  it('leaves out repeated subject and session ids (suggesting --group), not a two-valued session or subject_age', () => {
    const s = inferSchema(
      table({
        subject: range(400, (i) => `train_${String(Math.floor(i / 10)).padStart(4, '0')}`),
        Session: range(400, (i) => String(Math.floor(i / 10))),
        session: range(400, (i) => (i % 2 ? 'am' : 'pm')),
        subject_age: range(400, (i) => String(20 + (Math.floor(i / 10) % 50))),
        hr: range(400, (i) => String(60 + (i % 37))),
      }),
    );
    expect(typeOf(s, 'subject')).toMatchObject({ type: 'identifier', role: 'ignored' });
    expect(typeOf(s, 'Session')).toMatchObject({ type: 'identifier', role: 'ignored' });
    expect(typeOf(s, 'session')).toMatchObject({ type: 'categorical', role: 'feature' });
    expect(typeOf(s, 'subject_age')).toMatchObject({ type: 'integer', role: 'feature' });
    expect(s.warnings.find((w) => w.column === 'subject')!.message).toBe(
      `column "subject": looks like an identifier; ignored (its values repeat: --group subject keeps each one's rows on one side of every split)`,
    );
    // Grouped by (or left out by) the user: no finding about it.
    const grouped = inferSchema(table({ subject: range(40, (i) => `s${i % 12}`), hr: range(40, (i) => String(60 + i)) }), { drop: ['subject'] });
    expect(grouped.warnings.filter((w) => w.column === 'subject')).toEqual([]);
  });

  it('never calls distinct measurements identifiers', () => {
    const s = inferSchema(
      table({
        mean_radius: range(50, (i) => (10 + i * 0.37).toFixed(3)), // distinct and increasing floats
        insulin: range(50, (i) => String(15 + ((i * 37) % 800))), // distinct integers, not a row count
        steps: range(50, (i) => String(3000 + i * 17)), // strictly increasing, but not by 1
      }),
    );
    expect(typeOf(s, 'mean_radius').type).toBe('numeric');
    expect(typeOf(s, 'insulin').type).toBe('integer');
    expect(typeOf(s, 'steps').type).toBe('integer');
    expect(s.schema.columns.every((c) => c.role === 'feature')).toBe(true);
  });

  it('keeps a mostly-numeric column numeric and counts the stray text', () => {
    const vals = range(100, (i) => (i < 3 ? 'pending' : (i * 1.5).toFixed(1)));
    const s = inferSchema(table({ glucose: vals }));
    expect(typeOf(s, 'glucose').type).toBe('numeric');
    expect(s.warnings).toContainEqual({
      code: 'non_numeric',
      column: 'glucose',
      message: 'column "glucose": 3 non-numeric values treated as missing',
    });
    // Above 5 % stray text: not numeric any more.
    const s2 = inferSchema(table({ x: range(100, (i) => (i < 6 ? 'pending' : String(i % 9))) }));
    expect(typeOf(s2, 'x').type).toBe('categorical');
  });

  it('booleans, datetimes, free text, categoricals, all-missing and constant columns', () => {
    const s = inferSchema(
      table({
        smoker: range(40, (i) => (i % 3 === 0 ? 'yes' : i % 5 === 0 ? null : 'no')),
        flag01: range(40, (i) => String(i % 2)),
        visit: range(40, (i) => `2024-01-${String(1 + (i % 28)).padStart(2, '0')}`),
        notes: range(40, (i) => `patient reports mild symptoms on day ${i} after the change`),
        sex: range(40, (i) => (i % 2 ? 'F' : 'M')),
        empty: range(40, () => null),
        site: range(40, () => 'north'),
      }),
    );
    expect(typeOf(s, 'smoker').type).toBe('boolean');
    expect(typeOf(s, 'flag01').type).toBe('integer');
    expect(typeOf(s, 'visit').type).toBe('datetime');
    expect(typeOf(s, 'notes')).toMatchObject({ type: 'text', role: 'ignored', reason: 'free text' });
    expect(typeOf(s, 'sex')).toMatchObject({ type: 'categorical', role: 'feature' });
    expect(typeOf(s, 'empty')).toMatchObject({ role: 'ignored', reason: 'all values missing' });
    expect(typeOf(s, 'site')).toMatchObject({ role: 'ignored', reason: 'constant' });
    expect(s.warnings.map((w) => w.code).sort()).toEqual(['all_missing', 'constant', 'free_text']);
  });

  it('applies target, overrides and drop, and rejects unknown names with suggestions', () => {
    const t = table({
      age: range(20, (i) => String(30 + i * 2)),
      zip: range(20, (i) => String(10000 + (i % 4))),
      outcome: range(20, (i) => (i % 2 ? 'pos' : 'neg')),
      record_no: range(20, (i) => String(i * 3)),
    });
    const s = inferSchema(t, { target: 'outcome', overrides: { zip: 'categorical' }, drop: ['age'] });
    expect(typeOf(s, 'outcome')).toEqual({ name: 'outcome', type: 'categorical', role: 'target' });
    expect(typeOf(s, 'zip')).toEqual({ name: 'zip', type: 'categorical', role: 'feature' });
    expect(typeOf(s, 'age')).toEqual({ name: 'age', type: 'integer', role: 'ignored', reason: 'dropped by user' });
    expect(typeOf(s, 'record_no').type).toBe('identifier');
    const err = (f: () => unknown): MedfitError => {
      try {
        f();
      } catch (e) {
        return e as MedfitError;
      }
      throw new Error('expected a failure');
    };
    const e = err(() => inferSchema(t, { overrides: { Age: 'numeric' } }));
    expect(e.code).toBe('MEDFIT_ERR_USAGE');
    expect(e.message).toBe('type override: no column "Age"; did you mean "age"?');
    expect(err(() => inferSchema(t, { target: 'outcom' })).message).toMatch(/no column "outcom"; did you mean "outcome"/);
    expect(err(() => inferSchema(t, { drop: ['nothing_like_it'] })).message).toBe('drop: no column "nothing_like_it"');
    expect(err(() => inferSchema(t, { target: 'age', drop: ['age'] })).code).toBe('MEDFIT_ERR_USAGE');
  });

  it('splits names into words', () => {
    expect(nameWords('PatientID')).toEqual(['patient', 'id']);
    expect(nameWords('row_no')).toEqual(['row', 'no']);
    expect(nameWords('lipid_panel')).toEqual(['lipid', 'panel']);
    // The two patterns the split used to be, as the reference, on names of every shape.
    const reference = (n: string) =>
      n
        .replace(/([a-z0-9])([A-Z])/g, '$1 $2')
        .replace(/([A-Z]+)([A-Z][a-z])/g, '$1 $2')
        .toLowerCase()
        .split(/[^a-z0-9]+/)
        .filter((w) => w !== '');
    for (const n of ['HTTPServer', 'aBC', 'a1B2C', 'ABCDeFG', 'mean_radius2X', 'Née_Date', '__x__Y', 'IDs', 'patientId', 'A', '']) {
      expect(nameWords(n), n).toEqual(reference(n));
    }
    // Linear in the name: the second pattern backtracked quadratically over a long capital run.
    const started = performance.now();
    expect(nameWords('A'.repeat(200_000) + 'b')).toHaveLength(2);
    expect(performance.now() - started).toBeLessThan(500);
  });
});

describe('inferSchema on the real fixtures', () => {
  it('pima: all numeric features, categorical target, no identifiers', async () => {
    const t = await readTable(join(FIXTURES, 'pima_diabetes.csv'));
    const { schema, warnings } = inferSchema(t, { target: 'diabetes' });
    const features = schema.columns.filter((c) => c.role === 'feature');
    expect(features).toHaveLength(8);
    expect(features.every((c) => c.type === 'numeric' || c.type === 'integer')).toBe(true);
    expect(typeOf({ schema, warnings }, 'diabetes')).toEqual({ name: 'diabetes', type: 'categorical', role: 'target' });
    expect(schema.columns.filter((c) => c.type === 'identifier')).toHaveLength(0);
    expect(warnings).toEqual([]);
  });

  it('breast cancer: 30 numeric features, no identifiers', async () => {
    const t = await readTable(join(FIXTURES, 'breast_cancer_wdbc.csv'));
    const { schema } = inferSchema(t, { target: 'diagnosis' });
    expect(schema.columns.filter((c) => c.role === 'feature' && c.type === 'numeric')).toHaveLength(30);
    expect(schema.columns.filter((c) => c.role === 'ignored')).toHaveLength(0);
  });

  it('diabetes progression and linnerud: numeric features, numeric targets', async () => {
    const d = inferSchema(await readTable(join(FIXTURES, 'diabetes_progression.csv')), { target: 'progression' });
    expect(d.schema.columns.filter((c) => c.role === 'feature')).toHaveLength(10);
    expect(typeOf(d, 'progression').type).toBe('integer');
    const l = inferSchema(await readTable(join(FIXTURES, 'linnerud_fitness.csv')), { target: 'weight' });
    expect(l.schema.columns.every((c) => c.type === 'integer' && c.role !== 'ignored')).toBe(true);
  });
});
