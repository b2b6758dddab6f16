import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { columnPhi, inferSchema, isAgeName, phiNameKind, profileFile, profileTable, sampleTexts, shapeKind, tableFromRows, valueShape } from './index.js';

describe('valueShape', () => {
  it('recognises identifier shapes', () => {
    const cases: Array<[string, string]> = [
      ['zebulon.quixotevski@example.net', 'email'],
      ["o'brien+tag@mail.example.co.uk", 'email'],
      ['078-05-1120', 'ssn'],
      ['078 05 1120', 'ssn'],
      ['603-555-0147', 'phone'],
      ['(603) 555-0147', 'phone'],
      ['603.555.0147', 'phone'],
      ['+1 603 555 0147', 'phone'],
      ['1-603-555-0147', 'phone'],
      ['603-555-0147 x12', 'phone'],
      ['603-555-0147 ext. 12', 'phone'],
      ['+44 20 7946 0958', 'phone'],
      ['742 Evergreen Terrace', 'address'],
      ['313 Lockman Row Suite 4', 'address'],
      ['221B Baker Street', 'address'],
      ['PO Box 1234', 'address'],
      ['01940-1234', 'zip'],
      ['https://photos.example.net/zq.jpg', 'url'],
      ['www.example.net', 'url'],
      ['10.20.30.40', 'ip'],
      ['1931-06-14', 'date'],
      ['1931-06-14T10:00:00Z', 'date'],
      ['6/14/1931', 'date'],
      ['14.06.1931', 'date'],
      ['1931/06/14', 'date'],
    ];
    for (const [text, shape] of cases) expect(valueShape(text), text).toBe(shape);
  });

  it('leaves ordinary values alone', () => {
    for (const text of ['Never smoker', 'positive', '12.5 mg', 'a@b', 'two@@example.net', 'x@example', 'A1C-2019', '555-0147', '1234567890', '3 Months', 'Type 2 diabetes mellitus', '2019-13-45', '1931', '12:30:00', '256.1.1.1', '1.2.3', 'hello world street']) {
      expect(valueShape(text), text).toBeUndefined();
    }
  });

  it('stays linear on long hostile input', () => {
    const long = '1'.repeat(200_000) + '@' + 'a.'.repeat(100_000);
    const t = performance.now();
    for (let i = 0; i < 20; i++) {
      valueShape(long);
      valueShape('1-'.repeat(100_000));
      valueShape('9 ' + 'st '.repeat(50_000));
    }
    // Long texts have no shape: they are not even read.
    expect(valueShape('9 Main ' + 'St '.repeat(100))).toBeUndefined();
    expect(performance.now() - t).toBeLessThan(1000);
  });
});

describe('phiNameKind and isAgeName', () => {
  it('names the kind a column name suggests', () => {
    expect(phiNameKind('first_name')).toBe('name');
    expect(phiNameKind('PatientName')).toBe('name');
    expect(phiNameKind('date_of_birth')).toBe('birthdate');
    expect(phiNameKind('DOB')).toBe('birthdate');
    expect(phiNameKind('email')).toBe('email');
    expect(phiNameKind('HomePhone')).toBe('phone');
    expect(phiNameKind('mrn')).toBe('mrn');
    expect(phiNameKind('zip_code')).toBe('zip');
    expect(phiNameKind('city')).toBe('address');
    expect(phiNameKind('ip_address')).toBe('ip');
    for (const n of ['drug_name', 'birth_weight', 'glucose', 'outcome', 'stage']) expect(phiNameKind(n), n).toBeUndefined();
    expect(isAgeName('age')).toBe(true);
    expect(isAgeName('PatientAge')).toBe(true);
    expect(isAgeName('age_years')).toBe(true);
    expect(isAgeName('age_months')).toBe(false);
    expect(isAgeName('dosage')).toBe(false);
    expect(isAgeName('stage')).toBe(false);
  });
});

describe('shapeKind and sampleTexts', () => {
  it('takes the shape most of a sample has, full dates as dates of birth only under a birth name', () => {
    expect(shapeKind(['a@example.net', 'b@example.net', 'c@example.net', 'unknown'])).toBe('email');
    expect(shapeKind(['a@example.net', 'x', 'y', 'z'])).toBeUndefined();
    expect(shapeKind(['1931-06-14', '1950-01-02'], 'born')).toBe('birthdate');
    expect(shapeKind(['1931-06-14', '1950-01-02'], 'birth')).toBe('birthdate');
    expect(shapeKind(['1931-06-14', '1950-01-02'], 'admitted')).toBe('date');
    expect(shapeKind([])).toBeUndefined();
  });

  it('reads a bounded sample spread over the column', () => {
    const rows = Array.from({ length: 5000 }, (_, i) => [`user${i}@example.net`]);
    const t = tableFromRows(['contact'], rows);
    const s = sampleTexts(t.data[0]!.stats, 50);
    expect(s.length).toBe(50);
    expect(s[0]).toBe('user0@example.net');
    expect(s[49]).toBe('user4900@example.net');
  });
});

describe('profiles flag columns by the shape of their values', () => {
  const rows = Array.from({ length: 30 }, (_, i) => [
    `c${i}`,
    `person${i}@example.net`,
    `603-555-${String(1000 + i)}`,
    `${100 + i} Evergreen Terrace`,
    `19${30 + i}-06-1${i % 10}`,
    `19${30 + i}-06-1${i % 10}`,
    i % 3 === 0 ? 'Never smoker' : 'Former smoker',
    `Patient ${i} reports dizziness near the old quarry after visit number ${i}`,
    90 + ((i * 7) % 40),
  ]);
  const columns = ['code', 'contact', 'reach', 'residence', 'born', 'admitted', 'smoking', 'remarks', 'glucose'];

  it('sets identifier with a hint that quotes no value, and the PHI kind', () => {
    const t = tableFromRows(columns, rows);
    const p = profileTable(t, inferSchema(t).schema);
    const col = Object.fromEntries(p.columns.map((c) => [c.name, c]));
    expect(col['contact']).toMatchObject({ identifier: 'its values look like e-mail addresses', phi: 'email' });
    expect(col['reach']).toMatchObject({ identifier: 'its values look like phone numbers', phi: 'phone' });
    expect(col['residence']).toMatchObject({ identifier: 'its values look like street addresses', phi: 'address' });
    expect(col['born']).toMatchObject({ identifier: 'its values are full dates and its name suggests a date of birth', phi: 'birthdate' });
    expect(col['remarks']).toMatchObject({ identifier: 'its values look like free text, which may name people', phi: 'text' });
    // An admission date is a date, not a flag; a category and a measurement are neither.
    expect(col['admitted']!.identifier).toBeUndefined();
    expect(col['smoking']!.identifier).toBeUndefined();
    expect(col['smoking']!.phi).toBeUndefined();
    expect(col['glucose']!.phi).toBeUndefined();
    // Flagged columns keep their counts and lose their values.
    expect(col['born']!.min).toBeUndefined();
    expect(col['contact']!.top).toBeUndefined();
    expect(col['contact']!.distinct).toBe(30);
    const text = JSON.stringify(p.columns.filter((c) => c.identifier !== undefined));
    expect(text).not.toMatch(/example\.net|555-|Evergreen|1930|quarry/);
  });

  it('gives the same flags when a file is profiled from disk', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'medfit-phi-'));
    try {
      const path = join(dir, 't.csv');
      writeFileSync(path, [columns.join(','), ...rows.map((r) => r.join(','))].join('\n') + '\n');
      const p = await profileFile(path);
      const flags = Object.fromEntries(p.columns.map((c) => [c.name, c.phi ?? null]));
      expect(flags).toEqual({ code: 'identifier', contact: 'email', reach: 'phone', residence: 'address', born: 'birthdate', admitted: null, smoking: null, remarks: 'text', glucose: null });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('marks full dates in a text column as dates without flagging them', () => {
    const t = tableFromRows(['seen'], Array.from({ length: 12 }, (_, i) => [`${(i % 4) + 1}/2/2019`]));
    const schema = inferSchema(t).schema;
    expect(schema.columns[0]!.type).toBe('categorical');
    expect(columnPhi('seen', 'categorical', t.data[0]!.stats)).toEqual({ kind: 'date' });
    const p = profileTable(t, schema);
    expect(p.columns[0]).toMatchObject({ phi: 'date' });
    expect(p.columns[0]!.identifier).toBeUndefined();
  });
});
