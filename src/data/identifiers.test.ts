/**
 * Identifiers by more names and by shape (schema.ts): patient numbers of common exports, row keys
 * that need distinct integers (`case`), and distinct integers that are dense over their range or
 * run in file order, whatever they are called; with the guards that keep measurements and labels.
 * The streaming profile reads the same evidence from a file and must decide alike.
 */
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Rng, type Cell } from '../core/index.js';
import { profileFile } from './profile.js';
import { tableFromRows } from './read.js';
import { inferSchema } from './schema.js';

function table(columns: Record<string, Cell[]>) {
  const names = Object.keys(columns);
  const n = columns[names[0]!]!.length;
  return tableFromRows(names, Array.from({ length: n }, (_, i) => names.map((c) => columns[c]![i]!)), { source: 't.csv' });
}
const range = (n: number, f: (i: number) => Cell): Cell[] => Array.from({ length: n }, (_, i) => f(i));
const typeOf = (s: ReturnType<typeof inferSchema>, name: string) => s.schema.columns.find((c) => c.name === name)!;

/** `n` distinct integers from 1..ceil(n / density), shuffled (seeded). */
function gappyIds(n: number, density: number, seed: number, sorted = false): number[] {
  const rng = new Rng(seed);
  const pool = rng.shuffle(Array.from({ length: Math.ceil(n / density) }, (_, i) => i + 1)).slice(0, n);
  return sorted ? pool.sort((a, b) => a - b) : pool;
}

describe('identifiers by name', () => {
  it("takes common exports' patient numbers (pid, patid, SEQN, eid, subjid) with at least 10 values, not a 0/1 pid", () => {
    const s = inferSchema(
      table({
        pid: range(40, (i) => 1000 + ((i * 13) % 40) * 7), // distinct, sparse, unordered: only the name says it
        patid: range(40, (i) => 500 + (i % 20)), // repeated: a group key
        SEQN: range(40, (i) => 73557 + i * 3),
        eid: range(40, (i) => `E${(i * 7919) % 10007}`),
        subjid: range(40, (i) => 10 + ((i * 17) % 40) * 5),
        PID: range(40, (i) => i % 2), // pelvic inflammatory disease: a 0/1 diagnosis
        age: range(40, (i) => 20 + (i % 9)),
      }),
    );
    for (const c of ['pid', 'patid', 'SEQN', 'eid', 'subjid']) expect(typeOf(s, c), c).toMatchObject({ type: 'identifier', role: 'ignored' });
    expect(typeOf(s, 'PID')).toMatchObject({ type: 'integer', role: 'feature' });
    expect(typeOf(s, 'age')).toMatchObject({ type: 'integer', role: 'feature' });
  });

  it('takes `case` as a row key only when its values are distinct integers: a 0/1 case stays a label or a feature', () => {
    const keyed = inferSchema(table({ case: range(30, (i) => 3 * i + ((i * 7) % 3)), x: range(30, (i) => (i * 0.37).toFixed(2)) }));
    expect(typeOf(keyed, 'case')).toMatchObject({ type: 'identifier', role: 'ignored' });
    const label = table({ case: range(60, (i) => (i % 3 === 0 ? 1 : 0)), x: range(60, (i) => (i * 0.37).toFixed(2)) });
    expect(typeOf(inferSchema(label), 'case')).toMatchObject({ type: 'integer', role: 'feature' });
    expect(typeOf(inferSchema(label, { target: 'case' }), 'case')).toMatchObject({ type: 'integer', role: 'target' });
    // Distinct integers as the target are still the target.
    expect(typeOf(inferSchema(table({ case: range(30, (i) => i * 3), x: range(30, (i) => i * 0.5) }), { target: 'case' }), 'case').role).toBe('target');
  });
});

describe('identifiers by shape', () => {
  it('takes distinct integers dense over their range (gaps allowed) under any name, and says why', () => {
    const n = gappyIds(600, 0.93, 1);
    const s = inferSchema(table({ n, x: range(600, (i) => ((i * 0.731) % 5).toFixed(3)) }));
    expect(typeOf(s, 'n')).toMatchObject({ type: 'identifier', role: 'ignored', reason: 'identifier' });
    const w = s.warnings.find((x) => x.column === 'n')!;
    expect(w.code).toBe('identifier');
    expect(w.message).toMatch(/by its shape: 600 distinct integers filling 9\d % of their range; --type n=integer keeps it as a feature/);
    // The user's word wins.
    expect(typeOf(inferSchema(table({ n, x: range(600, (i) => i * 0.5) }), { overrides: { n: 'integer' } }), 'n')).toMatchObject({ type: 'integer', role: 'feature' });
  });

  it('takes distinct integers that run in file order when they fill at least 70 % of their range', () => {
    const up = gappyIds(100, 0.75, 2, true);
    const down = [...gappyIds(100, 0.75, 3, true)].reverse();
    const s = inferSchema(table({ m: up, k: down, x: range(100, (i) => (i * 0.37).toFixed(2)) }));
    expect(typeOf(s, 'm').type).toBe('identifier');
    expect(typeOf(s, 'k').type).toBe('identifier');
    expect(s.warnings.find((w) => w.column === 'k')!.message).toMatch(/decreasing in file order/);
  });

  it('keeps measurements: distinct but sparse integers, sparse increasing ones, short columns, floats and repeats', () => {
    const s = inferSchema(
      table({
        insulin: range(60, (i) => 15 + ((i * 37) % 800)), // distinct, unordered, 7 % of its range
        steps: range(60, (i) => 3000 + i * 17), // strictly increasing, 6 % of its range
        ordered_sparse: gappyIds(60, 0.5, 4, true), // increasing but half its range empty
        dense_float: range(60, (i) => ((i * 7) % 60) + 0.5), // dense, but not integers
        hr: range(60, (i) => 60 + (i % 40)), // dense values that repeat
      }),
    );
    for (const c of ['insulin', 'steps', 'ordered_sparse', 'hr']) expect(typeOf(s, c), c).toMatchObject({ type: 'integer', role: 'feature' });
    expect(typeOf(s, 'dense_float')).toMatchObject({ type: 'numeric', role: 'feature' });
    // Fewer than 20 values: a dense run of distinct integers is too easily chance.
    const short = inferSchema(table({ score: gappyIds(19, 0.95, 5) }));
    expect(typeOf(short, 'score').type).toBe('integer');
  });

  it('decides alike from a streaming profile of the file', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'medfit-ids-'));
    const file = join(dir, 'ids.csv');
    const dense = gappyIds(300, 0.92, 6);
    const up = gappyIds(300, 0.8, 7, true);
    const lines = ['n,m,insulin,x', ...dense.map((v, i) => `${v},${up[i]},${15 + ((i * 37) % 800)},${(i * 0.37).toFixed(2)}`)];
    writeFileSync(file, lines.join('\n') + '\n');
    const p = await profileFile(file);
    const type = (c: string) => p.schema.columns.find((x) => x.name === c)!.type;
    expect([type('n'), type('m'), type('insulin'), type('x')]).toEqual(['identifier', 'identifier', 'integer', 'numeric']);
  });
});
