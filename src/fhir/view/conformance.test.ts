import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, it, expect } from 'vitest';
import { runConformance } from './conformance.js';

const SUITE = fileURLToPath(new URL('../../../test/fixtures/sql-on-fhir', import.meta.url));

describe('SQL-on-FHIR v2 conformance suite (vendored, test/fixtures/sql-on-fhir)', () => {
  it('passes all 134 tests with the fast path', async () => {
    const r = await runConformance(SUITE);
    expect(r.failures).toEqual([]);
    expect(r).toEqual({ passed: 134, failed: 0, failures: [] });
  });

  it('passes all 134 tests with fhirpath.js alone', async () => {
    const r = await runConformance(SUITE, { fastPath: false });
    expect(r.failures).toEqual([]);
    expect(r.passed).toBe(134);
  });
});

describe('runConformance', () => {
  it('reports each failure on one line naming file, title and what differed', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'medfit-sof-'));
    try {
      const resources = [{ resourceType: 'Patient', id: 'p1', gender: 'female' }];
      const view = { resource: 'Patient', select: [{ column: [{ name: 'id', path: 'id' }] }] };
      writeFileSync(
        join(dir, 'a.json'),
        JSON.stringify({
          title: 't',
          resources,
          tests: [
            { title: 'right', view, expect: [{ id: 'p1' }] },
            { title: 'wrong rows', view, expect: [{ id: 'p2' }] },
            { title: 'wrong columns', view, expect: [{ id: 'p1' }], expectColumns: ['x'] },
            { title: 'no error', view, expectError: true },
            { title: 'bad view', view: { resource: 'Nope', select: [] }, expect: [] },
            { title: 'count', view, expectCount: 1 },
          ],
        }),
      );
      writeFileSync(join(dir, 'b.json'), '{"resources": [');
      writeFileSync(join(dir, 'tests.schema.json'), JSON.stringify({ $id: 'x', properties: {} }));
      const r = await runConformance(dir);
      expect(r.passed).toBe(2);
      expect(r.failed).toBe(5);
      expect(r.failures[0]).toBe('a.json: "wrong rows": 1 row(s), expected 1; unexpected {"id":"p1"}; missing {"id":"p2"}');
      expect(r.failures[1]).toBe('a.json: "wrong columns": columns (id) instead of (x)');
      expect(r.failures[2]).toBe('a.json: "no error": expected an error, got 1 row(s)');
      expect(r.failures[3]).toMatch(/^a\.json: "bad view": unexpected error: a\.json: \/resource: "Nope" is not an R4 resource type/);
      expect(r.failures[4]).toMatch(/^b\.json: b\.json: not valid JSON: unexpected end at character 16$/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('refuses a folder it cannot read', async () => {
    await expect(runConformance('/nonexistent/medfit')).rejects.toThrow(/cannot read this folder/);
  });
});
