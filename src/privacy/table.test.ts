import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isMedfitError } from '../core/index.js';
import { profileFile } from '../data/index.js';
import { Deidentifier, deidentifyTableFile, planTable, yearOfCell, type ColumnRule } from './index.js';

const KEY = Buffer.alloc(32, 0x42);
const NOW = new Date('2026-06-01T00:00:00Z');
let dir: string;

beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'medfit-deid-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

/** Twelve rows, two per patient; the first patient is 95 and lives in a restricted ZIP3 area. */
const HEADER = ['patient_id', 'mrn', 'first_name', 'surname', 'email', 'phone', 'ssn', 'street_address', 'city', 'zip', 'dob', 'visit_date', 'age', 'contact', 'notes', 'glucose', 'sex', 'outcome'];
const PEOPLE = [
  { id: 'pat-zq-1', mrn: 'MRN-ZQ-99817', first: 'Zebulon', last: 'Quixotevski', email: 'zebulon.q@example.net', phone: '603-555-0147', ssn: '078-05-1120', street: '742 Evergreen Terrace', city: 'Quahogshire', zip: '03601', dob: '1931-06-14', age: 95, contact: '(603) 555-0148' },
  { id: 'pat-pw-2', mrn: 'MRN-PW-44120', first: 'Philomena', last: 'Wigglesworth', email: 'philomena.w@example.net', phone: '802-555-0199', ssn: '219-09-9999', street: '1313 Mockingbird Lane', city: 'Gravesend Hollow', zip: '05928', dob: '1962-11-23', age: 63, contact: '802.555.0198' },
  { id: 'pat-tb-3', mrn: 'MRN-TB-31337', first: 'Thaddeus', last: 'Okonkwo-Brannigan', email: 'thaddeus.ob@example.net', phone: '212-555-0163', ssn: '457-55-5462', street: '221B Baker Street', city: 'Marylebone Crossing', zip: '10027-1234', dob: '1958-02-27', age: 68, contact: '+1 212 555 0162' },
  { id: 'pat-aa-4', mrn: 'MRN-AA-1', first: 'Ariadne', last: 'Fennimore', email: 'ariadne@example.net', phone: '617-555-0100', ssn: '123-45-6789', street: '9 Elm Row Suite 4', city: 'Dorchester Falls', zip: '02124', dob: '1980-01-02', age: 46, contact: '617-555-0101' },
  { id: 'pat-bb-5', mrn: 'MRN-BB-2', first: 'Barnabas', last: 'Ollivander', email: 'barnabas@example.net', phone: '617-555-0111', ssn: '987-65-4321', street: '77 Sunset Blvd', city: 'Westhaven', zip: '02125', dob: '1990-05-06', age: 36, contact: '617-555-0112' },
  { id: 'pat-cc-6', mrn: 'MRN-CC-3', first: 'Cordelia', last: 'Pemberton', email: 'cordelia@example.net', phone: '617-555-0122', ssn: '111-22-3333', street: '5 Harbor Way', city: 'Eastbrook', zip: '02126', dob: '1975-09-10', age: 51, contact: '617-555-0123' },
];
const NOTE = 'lives alone with seven cats, dizzy near the old quarry';

function planted(): string[] {
  const out = [NOTE];
  for (const p of PEOPLE) out.push(p.id, p.mrn, p.first, p.last, p.email, p.phone, p.ssn, p.street, p.city, p.zip, p.dob, p.contact);
  out.push('1931', '036');
  return out;
}

function csv(): string {
  const lines = [HEADER.join(',')];
  PEOPLE.forEach((p, k) => {
    for (const [v, visit] of [
      [0, `2020-0${k + 1}-1${k}`],
      [1, `2021-0${k + 1}-2${k}`],
    ] as const) {
      const note = `"${NOTE} (visit ${v + 1} of patient ${k + 1}, with a long enough comment to read as free text)"`;
      lines.push([p.id, p.mrn, p.first, p.last, p.email, p.phone, p.ssn, `"${p.street}"`, p.city, p.zip, p.dob, visit, p.age, p.contact, note, 90 + k * 7 + v, k % 2 ? 'F' : 'M', (k + v) % 2].join(','));
    }
  });
  return lines.join('\r\n') + '\r\n';
}

function deid(): Deidentifier {
  return new Deidentifier({ key: KEY, now: NOW });
}

async function rulesFor(path: string): Promise<ColumnRule[]> {
  const profile = await profileFile(path, { target: 'outcome' });
  return planTable(profile.columns);
}

function parseCsv(text: string): string[][] {
  // The test's own outputs: no quoted commas or line breaks in them.
  return text
    .trim()
    .split('\n')
    .map((l) => l.split(','));
}

describe('planTable', () => {
  it('plans from the profile: drop, pseudonym, ZIP3, year, age cap, keep', async () => {
    const path = join(dir, 'plan.csv');
    writeFileSync(path, csv());
    const rules = await rulesFor(path);
    const action = Object.fromEntries(rules.map((r) => [r.column, r.action]));
    expect(action).toEqual({
      patient_id: 'pseudonym',
      mrn: 'pseudonym',
      first_name: 'drop',
      surname: 'drop',
      email: 'drop',
      phone: 'drop',
      ssn: 'drop',
      street_address: 'drop',
      city: 'drop',
      zip: 'zip3',
      dob: 'year',
      visit_date: 'year',
      age: 'age',
      // Flagged by the shape of its values: phone numbers under a neutral name.
      contact: 'drop',
      notes: 'drop',
      glucose: 'keep',
      sex: 'keep',
      outcome: 'keep',
    });
    expect(rules.find((r) => r.column === 'contact')).toMatchObject({ kind: 'phone' });
    for (const r of rules) for (const s of planted()) expect(r.reason).not.toContain(s);
  });

  it('decides by the name for a profile written without PHI kinds', () => {
    const rules = planTable([
      { name: 'PatientEmail', type: 'categorical' },
      { name: 'zip_code', type: 'integer' },
      { name: 'age_months', type: 'integer' },
      { name: 'Age', type: 'numeric' },
      { name: 'admitted', type: 'datetime' },
      { name: 'sample', type: 'identifier' },
      { name: 'bmi', type: 'numeric' },
    ]);
    expect(rules.map((r) => r.action)).toEqual(['drop', 'zip3', 'keep', 'age', 'year', 'pseudonym', 'keep']);
  });
});

describe('deidentifyTableFile', () => {
  it('leaves none of the planted identifiers in a CSV, and keeps what the model needs', async () => {
    const path = join(dir, 'people.csv');
    const out = join(dir, 'people.deid.csv');
    writeFileSync(path, csv());
    const before = readFileSync(path, 'utf8');
    const rules = await rulesFor(path);
    const r = await deidentifyTableFile(path, out, { rules, deidentifier: deid(), source: 'people.csv' });
    expect(readFileSync(path, 'utf8')).toBe(before);
    const text = readFileSync(out, 'utf8');
    for (const s of planted()) expect(text, `"${s}" survived`).not.toContain(s);
    expect(r.rows).toBe(12);
    expect(r.columns).toEqual(['patient_id', 'mrn', 'zip', 'dob', 'visit_date', 'age', 'glucose', 'sex', 'outcome']);
    const rows = parseCsv(text);
    expect(rows[0]).toEqual(r.columns);
    const col = (name: string) => rows.slice(1).map((row) => row[r.columns.indexOf(name)]!);
    // Pseudonyms: the same patient's rows still share one, so --group still works.
    const ids = col('patient_id');
    expect(new Set(ids).size).toBe(6);
    for (let k = 0; k < 6; k++) expect(ids[2 * k]).toBe(ids[2 * k + 1]);
    expect(ids[0]).toBe(deid().pseudonym('pat-zq-1', 'id'));
    expect(col('mrn')[0]).toBe(deid().pseudonym('MRN-ZQ-99817', 'identifier'));
    // 036 and 059 are restricted ZIP3 areas.
    expect(col('zip')).toEqual(['000', '000', '000', '000', '100', '100', '021', '021', '021', '021', '021', '021']);
    // The 95-year-old's birth year pooled at 90 (2026 − 90), the others' years kept.
    expect(col('dob')).toEqual(['1936', '1936', '1962', '1962', '1958', '1958', '1980', '1980', '1990', '1990', '1975', '1975']);
    expect(col('visit_date')).toEqual(['2020', '2021', '2020', '2021', '2020', '2021', '2020', '2021', '2020', '2021', '2020', '2021']);
    expect(col('age')).toEqual(['90', '90', '63', '63', '68', '68', '46', '46', '36', '36', '51', '51']);
    expect(col('glucose')[3]).toBe('98');
    const report = Object.fromEntries(r.report.map((c) => [c.column, c]));
    expect(report['zip']).toMatchObject({ action: 'zip3', changed: 12, emptied: 0 });
    expect(report['age']).toMatchObject({ action: 'age', changed: 2, emptied: 0 });
    expect(report['glucose']).toMatchObject({ action: 'keep', changed: 0 });
    expect(JSON.stringify(r)).not.toMatch(/Zebulon|MRN-ZQ|1931/);
    expect(r.bytes).toBe(Buffer.byteLength(text));
  });

  it('de-identifies NDJSON and JSON arrays the same way, keeping each value\'s JSON type', async () => {
    const records = PEOPLE.map((p) => ({ patient_id: p.id, email: p.email, zip: p.zip, birth_year: Number(p.dob.slice(0, 4)), age: p.age, glucose: 100, notes: null }));
    const nd = join(dir, 'people.ndjson');
    writeFileSync(nd, records.map((x) => JSON.stringify(x)).join('\n') + '\n');
    const js = join(dir, 'people.json');
    writeFileSync(js, JSON.stringify(records));
    const rules = planTable([
      { name: 'patient_id', type: 'identifier' },
      { name: 'email', type: 'categorical' },
      { name: 'zip', type: 'categorical' },
      { name: 'birth_year', type: 'integer' },
      { name: 'age', type: 'integer' },
      { name: 'glucose', type: 'integer' },
    ]);
    for (const [input, parse] of [
      [nd, (t: string) => t.trim().split('\n').map((l) => JSON.parse(l))],
      [js, (t: string) => JSON.parse(t)],
    ] as const) {
      const out = `${input}.out`;
      const r = await deidentifyTableFile(input, out, { rules, deidentifier: deid() });
      const text = readFileSync(out, 'utf8');
      for (const s of planted()) expect(text, `"${s}" survived`).not.toContain(s);
      const got = parse(text) as Array<Record<string, unknown>>;
      expect(got[0]).toEqual({ patient_id: deid().pseudonym('pat-zq-1'), zip: '000', birth_year: 1936, age: 90, glucose: 100 });
      expect(got[2]).toEqual({ patient_id: deid().pseudonym('pat-tb-3'), zip: '100', birth_year: 1958, age: 68, glucose: 100 });
      expect(r.columns).toEqual(['patient_id', 'zip', 'birth_year', 'age', 'glucose']);
      // `notes` had no rule: dropped, and reported.
      expect(r.report.find((c) => c.column === 'notes')).toMatchObject({ action: 'drop', reason: 'not in the plan' });
    }
  });

  it('empties what a rule cannot read, and counts it', async () => {
    const path = join(dir, 'odd.csv');
    writeFileSync(path, 'id;zip;dob;age\nA1;K1A 0B6;March 2, 1950;NA\nA2;02139;02/03/1950;ninety\nA3;;1950;91\n');
    const rules: ColumnRule[] = [
      { column: 'id', action: 'pseudonym', reason: '' },
      { column: 'zip', action: 'zip3', reason: '' },
      { column: 'dob', action: 'year', kind: 'birthdate', reason: '' },
      { column: 'age', action: 'age', reason: '' },
    ];
    const out = join(dir, 'odd.out.csv');
    const r = await deidentifyTableFile(path, out, { rules, deidentifier: deid() });
    const rows = parseCsv(readFileSync(out, 'utf8')).slice(1);
    expect(rows.map((x) => x.slice(1))).toEqual([
      ['', '', 'NA'],
      ['021', '1950', ''],
      ['', '1950', '90'],
    ]);
    expect(r.report.map((c) => c.emptied)).toEqual([0, 1, 1, 1]);
  });

  it('writes nothing when the input is bad, and says where without a value', async () => {
    const rules: ColumnRule[] = [{ column: 'id', action: 'pseudonym', reason: '' }, { column: 'email', action: 'drop', reason: '' }];
    const cases: Array<[string, string | Buffer, RegExp]> = [
      ['ragged.csv', 'id,email\nZebulon,z@example.net\nQuixotevski\n', /ragged\.csv:3: row has 1 fields, header has 2/],
      ['binary.csv', Buffer.from([0x69, 0x64, 0x0a, 0x00, 0x01, 0x02]), /not a text table/],
      ['empty.csv', '\n\n', /empty file/],
      ['header.csv', 'id,email\n', /no data rows/],
      ['bad.ndjson', '{"id":"Zebulon"}\n{"id": Quixotevski}\n', /bad\.ndjson:2: not valid JSON/],
      ['nested.ndjson', '{"id":{"name":"Zebulon"}}\n', /nested values are not supported/],
      ['onlydropped.csv', 'email\nz@example.net\n', /every column is dropped/],
    ];
    for (const [name, content, want] of cases) {
      const path = join(dir, name);
      writeFileSync(path, content);
      const out = join(dir, 'bad-out', `${name}.out`);
      let err: unknown;
      try {
        await deidentifyTableFile(path, out, { rules, deidentifier: deid() });
      } catch (e) {
        err = e;
      }
      expect(isMedfitError(err), name).toBe(true);
      expect((err as Error).message, name).toMatch(want);
      expect((err as Error).message).not.toMatch(/Zebulon|Quixotevski|example\.net/);
      expect(existsSync(out), name).toBe(false);
    }
    // No temporary file is left behind either.
    expect(readdirSync(join(dir, 'bad-out')).filter((f) => f.includes('.tmp-'))).toEqual([]);
    await expect(deidentifyTableFile(join(dir, 'missing.csv'), join(dir, 'x.csv'), { rules, deidentifier: deid() })).rejects.toThrow(/not found/);
  });

  it('stops at a size limit with nothing written', async () => {
    const path = join(dir, 'big.csv');
    writeFileSync(path, csv());
    const out = join(dir, 'big.out.csv');
    await expect(deidentifyTableFile(path, out, { rules: await rulesFor(path), deidentifier: deid(), maxBytes: 100 })).rejects.toThrow(/larger than the limit/);
    expect(existsSync(out)).toBe(false);
  });
});

describe('yearOfCell', () => {
  it('reads the year of the common date spellings', () => {
    expect(yearOfCell('2019-03-02')).toBe(2019);
    expect(yearOfCell('2019-03-02T10:00:00Z')).toBe(2019);
    expect(yearOfCell('2019-03-02 10:00')).toBe(2019);
    expect(yearOfCell('3/2/2019')).toBe(2019);
    expect(yearOfCell('02.03.2019')).toBe(2019);
    expect(yearOfCell('2019/03/02')).toBe(2019);
    expect(yearOfCell('2019-03')).toBe(2019);
    expect(yearOfCell('03/2019')).toBe(2019);
    expect(yearOfCell('1950')).toBe(1950);
    for (const bad of ['March 2, 2019', '3/2/19', '19500', '', 'x2019', '2019-03-02-01']) expect(yearOfCell(bad), bad).toBeUndefined();
  });
});
