/**
 * The leakage guard on real and Rotterdam-like tables: a planted copy of the label is flagged with
 * its evidence and strict mode refuses it; a patient number in a file sorted by outcome is left
 * out as an identifier (by name or shape), and, when forced in as a feature, flagged and named
 * a likely leak with the honest score beside it; row order, later dates and a dominating column.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { MedfitError, Rng, type Cell } from '../core/index.js';
import { tableFromRows } from '../data/index.js';
import { dominantImportance, namedAsTimeOf, type LeakageWarning } from './leakage.js';
import { trainTable } from './train.js';

const FIXTURES = join(import.meta.dirname, '../../test/fixtures');

/** A fixture CSV of plain cells (no commas inside quotes) as rows of numbers, texts and nulls. */
function fixtureRows(name: string): { names: string[]; rows: Cell[][] } {
  const [head, ...lines] = readFileSync(join(FIXTURES, name), 'utf8').trim().split('\n');
  const cell = (s: string): Cell => {
    const t = s.trim().replace(/^"|"$/g, '');
    return t === '' ? null : Number.isFinite(Number(t)) ? Number(t) : t;
  };
  return { names: head!.split(',').map((s) => String(cell(s))), rows: lines.map((l) => l.split(',').map(cell)) };
}

/** `names` and `rows` with one more column computed from each row. */
function withColumn(t: { names: string[]; rows: Cell[][] }, name: string, f: (row: Cell[], i: number) => Cell) {
  return tableFromRows([...t.names, name], t.rows.map((r, i) => [...r, f(r, i)]), { source: 'leaky.csv' });
}

const leaks = (w: { code: string }[]) => w.filter((x): x is LeakageWarning => x.code === 'leakage');
/** The findings made before training (those strict mode refuses on), without the importance flag. */
const before = (w: { code: string }[]) => leaks(w).filter((x) => x.kind !== 'importance');

async function strictError(p: Promise<unknown>): Promise<MedfitError> {
  try {
    await p;
  } catch (e) {
    expect(e).toBeInstanceOf(MedfitError);
    return e as MedfitError;
  }
  throw new Error('expected strict mode to refuse');
}

/**
 * A Rotterdam-like table: a few real features with a moderate signal, the outcome, and the file
 * sorted by outcome with a patient number handed out in file order with gaps (as in the raw
 * Rotterdam breast-cancer table, where `pid` alone gave AUROC 0.9999).
 */
function rotterdamLike(n = 600, seed = 11, idName = 'pid', withId = true) {
  const rng = new Rng(seed);
  const rows = Array.from({ length: n }, () => {
    const age = 55 + 12 * rng.normal();
    const size = Math.max(2, 25 + 12 * rng.normal());
    const nodes = Math.max(0, Math.round(2 + 3 * rng.normal()));
    const grade = rng.next() < 0.6 ? 3 : 2;
    const er = Math.max(0, 80 + 60 * rng.normal());
    const logit = -0.6 + 0.02 * (age - 55) + 0.035 * (size - 25) + 0.25 * (nodes - 2) + 0.5 * (grade - 2.6) - 0.004 * (er - 80);
    const recur = rng.next() < 1 / (1 + Math.exp(-logit)) ? 1 : 0;
    return { cells: [Number(age.toFixed(1)), Number(size.toFixed(1)), nodes, grade, Number(er.toFixed(1))], recur };
  });
  rows.sort((a, b) => a.recur - b.recur); // stable: the file sorted by outcome
  let pid = 0;
  const out = rows.map((r) => {
    pid += 1 + (rng.next() < 0.03 ? 1 + rng.int(3) : 0); // unique, increasing, with gaps
    return [...(withId ? [pid] : []), ...r.cells, r.recur];
  });
  return tableFromRows([...(withId ? [idName] : []), 'age', 'size', 'nodes', 'grade', 'er', 'recur'], out, { source: 'rotterdam-like.csv' });
}

const FAST = { model: 'logistic' as const, cv: 5, seed: 0, params: { logistic: { C: 1 } } };

describe('leakage guard', () => {
  it('flags a planted copy of the label in pima_diabetes with its AUROC, names the score a likely leak, and strict mode refuses', async () => {
    const pima = fixtureRows('pima_diabetes.csv');
    const rng = new Rng(3);
    const target = pima.names.indexOf('diabetes');
    const leaky = withColumn(pima, 'leak', (r) => Number(((r[target] === 'pos' ? 1 : 0) + 0.2 * rng.normal()).toFixed(4)));
    const r = await trainTable(leaky, { target: 'diabetes', ...FAST });
    const flags = before(r.warnings);
    // The leak, and nothing else: pima's own features are honest predictors. (It also dwarfs
    // the others' permutation importance, flagged after training.)
    expect(flags.map((f) => [f.column, f.kind])).toEqual([['leak', 'single_feature']]);
    expect(leaks(r.warnings).map((f) => f.column)).toEqual(['leak', 'leak']);
    expect(flags[0]!.evidence['auroc']).toBeGreaterThanOrEqual(0.98);
    expect(flags[0]!.message).toMatch(/alone predicts "diabetes" almost perfectly \(univariate out-of-fold AUROC (0\.9\d\d|1\.000) ≥ 0\.98/);
    // The same family on the same folds without it: the honest score, and the verdict.
    const clean = await trainTable(tableFromRows(pima.names, pima.rows, { source: 'pima.csv' }), { target: 'diabetes', ...FAST });
    expect(leaks(clean.warnings)).toEqual([]);
    const rs = r.leakage.rescore!;
    expect(rs).toMatchObject({ metric: 'auroc', columns: ['leak'], likelyLeak: true });
    expect(rs.with).toBeGreaterThan(0.97);
    expect(Math.abs(rs.without - clean.cv.metrics['auroc']!.mean)).toBeLessThan(0.01);
    const verdict = r.warnings.find((w) => w.code === 'likely_leak')!;
    expect(verdict.message).toContain(`${rs.with.toFixed(3)} is likely a leak`);
    expect(verdict.message).toContain(rs.without.toFixed(3));
    expect(r.report.leakage?.findings.map((f) => f.column)).toEqual(['leak', 'leak']);
    const e = await strictError(trainTable(leaky, { target: 'diabetes', ...FAST, strict: true }));
    expect(e.code).toBe('MEDFIT_ERR_BAD_DATA');
    expect(e.message).toMatch(/^leaky\.csv: strict mode: the leakage check flags "leak" \(single_feature: auroc (1|0\.9\d+)\)/);
    expect(e.message).toContain('--ignore leak');
    expect(e.details.map((d) => d.pointer)).toEqual(['leak']);
  });

  it('re-scores without a column that only the importance check flags (recorded for most positive patients only), and names the likely leak', async () => {
    const pima = fixtureRows('pima_diabetes.csv');
    const rng = new Rng(5);
    const target = pima.names.indexOf('diabetes');
    // A dose recorded for 90 % of the positive patients and nobody else: below the univariate
    // 0.98, so only its dominance of the chosen model gives it away.
    const leaky = withColumn(pima, 'metformin_dose', (r) => (r[target] === 'pos' && rng.next() < 0.9 ? 500 + 500 * rng.int(3) : 0));
    const r = await trainTable(leaky, { target: 'diabetes', ...FAST });
    expect(before(r.warnings)).toEqual([]);
    const flag = leaks(r.warnings).find((f) => f.kind === 'importance')!;
    expect(flag.column).toBe('metformin_dose');
    const rs = r.leakage.rescore!;
    expect(rs).toMatchObject({ metric: 'auroc', columns: ['metformin_dose'], likelyLeak: true });
    expect(rs.with - rs.without).toBeGreaterThan(0.05);
    const verdict = r.warnings.find((w) => w.code === 'likely_leak')!;
    expect(verdict.message).toContain(`without "metformin_dose"`);
    expect(verdict.message).toContain('"ignore" on a job');
  });

  it('flags a planted copy of a regression target by its out-of-fold R²', async () => {
    const d = fixtureRows('diabetes_progression.csv');
    const rng = new Rng(4);
    const target = d.names.indexOf('progression');
    const leaky = withColumn(d, 'leak', (r) => Number((Number(r[target]) + 5 * rng.normal()).toFixed(2)));
    const r = await trainTable(leaky, { target: 'progression', model: 'linear', cv: 5, seed: 0, params: { linear: { alpha: 1 } } });
    const flags = before(r.warnings);
    expect(flags.map((f) => f.column)).toEqual(['leak']);
    expect(flags[0]!.evidence['r2']).toBeGreaterThanOrEqual(0.95);
    expect(flags[0]!.message).toMatch(/R² (0\.9\d\d|1\.000) ≥ 0\.95/);
    expect(r.leakage.rescore).toMatchObject({ metric: 'r2', likelyLeak: true });
  });

  it('Rotterdam-like: pid (by name) and the same column called n (by shape) are left out, and the AUROC is the honest one', async () => {
    const honest = await trainTable(rotterdamLike(600, 11, 'pid', false), { target: 'recur', ...FAST });
    const score = honest.cv.metrics['auroc']!.mean;
    expect(score).toBeGreaterThan(0.65);
    expect(score).toBeLessThan(0.9);
    for (const name of ['pid', 'n']) {
      const r = await trainTable(rotterdamLike(600, 11, name), { target: 'recur', ...FAST });
      expect(r.schema.columns.find((c) => c.name === name), name).toMatchObject({ type: 'identifier', role: 'ignored' });
      expect(r.warnings.find((w) => w.column === name)!.code).toBe('identifier');
      expect(Math.abs(r.cv.metrics['auroc']!.mean - score), name).toBeLessThan(0.03);
      expect(leaks(r.warnings)).toEqual([]);
    }
  });

  it('Rotterdam-like, pid forced in as a feature: flagged alone and by row order, the score named a likely leak, strict refuses', async () => {
    const t = rotterdamLike(600, 11, 'pid');
    const r = await trainTable(t, { target: 'recur', ...FAST, types: { pid: 'integer' } });
    const flags = before(r.warnings);
    expect(flags.map((f) => f.column)).toEqual(['pid', 'pid']);
    expect(flags.map((f) => f.kind).sort()).toEqual(['row_order', 'single_feature']);
    const order = flags.find((f) => f.kind === 'row_order')!;
    expect(order.evidence['spearman_row']).toBeGreaterThan(0.99);
    expect(order.evidence['target_row']).toBeGreaterThan(0.99);
    expect(r.cv.metrics['auroc']!.mean).toBeGreaterThan(0.95);
    const honest = await trainTable(rotterdamLike(600, 11, 'pid', false), { target: 'recur', ...FAST });
    expect(r.leakage.rescore).toMatchObject({ columns: ['pid'], likelyLeak: true });
    expect(Math.abs(r.leakage.rescore!.without - honest.cv.metrics['auroc']!.mean)).toBeLessThan(0.01);
    const e = await strictError(trainTable(t, { target: 'recur', ...FAST, types: { pid: 'integer' }, strict: true }));
    expect(e.message).toMatch(/"pid" \(single_feature: auroc (1|0\.9\d+)\); "pid" \(row_order: spearman_row (1|0\.99\d*), target_row 1\)/);
  });

  it('flags a column that follows the row order of a file partly sorted by outcome, and not the honest feature', async () => {
    const rng = new Rng(5);
    const n = 400;
    const rows: Cell[][] = Array.from({ length: n }, (_, i) => {
      const x = rng.normal();
      const p = (i < n / 2 ? 0.2 : 0.8) + 0.1 * Math.tanh(x);
      return [Number((i + 3 * rng.normal()).toFixed(2)), Number(x.toFixed(3)), rng.next() < p ? 'yes' : 'no'];
    });
    const r = await trainTable(tableFromRows(['entered', 'x', 'outcome'], rows, { source: 'sorted.csv' }), { target: 'outcome', ...FAST });
    const flags = before(r.warnings);
    expect(flags.map((f) => [f.column, f.kind])).toEqual([['entered', 'row_order']]);
    expect(flags[0]!.message).toMatch(/follows the file's row order \(Spearman (0\.99\d|1\.000) with the row number\) and so does "outcome" \(Somers' D 0\.\d+\)/);
  });

  it('flags a datetime feature later than the target\'s own date, not one before it', async () => {
    const rng = new Rng(6);
    const day = 86_400_000;
    const iso = (t: number) => new Date(t).toISOString().slice(0, 10);
    const rows: Cell[][] = Array.from({ length: 200 }, () => {
      const death = Date.UTC(2015, 0, 1) + rng.int(2000) * day;
      const x = rng.normal();
      return [iso(death - (10 + rng.int(90)) * day), iso(death + (1 + rng.int(30)) * day), iso(death), Number(x.toFixed(3)), x + rng.normal() > 0 ? 1 : 0];
    });
    const t = tableFromRows(['admit_date', 'discharge_date', 'death_date', 'x', 'death'], rows, { source: 'dates.csv' });
    const r = await trainTable(t, { target: 'death', ...FAST });
    const later = leaks(r.warnings).filter((f) => f.kind === 'post_outcome');
    expect(later.map((f) => f.column)).toEqual(['discharge_date']);
    expect(later[0]!.evidence).toMatchObject({ share_later: 1, rows: 200, target_date: 'death_date' });
  });

  it('names the time of a target, and a column that dominates the importance', () => {
    for (const n of ['death_date', 'date_of_death', 'DeathDate', 'deathdate', 'death time']) expect(namedAsTimeOf(n, 'death'), n).toBe(true);
    for (const n of ['death_cause', 'deaths', 'date', 'birth_date', 'age_at_death']) expect(namedAsTimeOf(n, 'death'), n).toBe(false);
    const imp = (a: number, b: number) => ({ metric: 'auroc', repeats: 3, features: [{ feature: 'a', drop: a, std: 0 }, { feature: 'b', drop: b, std: 0 }] });
    expect(dominantImportance(imp(0.3, 0.02))).toMatchObject({ column: 'a', kind: 'importance', evidence: { drop: 0.3, ratio: 15 } });
    expect(dominantImportance(imp(0.3, 0.02))!.message).toContain("15× the next column's (0.020)");
    // A next drop of noise is compared as the 0.01 floor, and the message says so.
    const floored = dominantImportance(imp(0.3, 0.0001))!;
    expect(floored.evidence).toMatchObject({ ratio: 30, ratio_of: 0.01, next_drop: 0.0001 });
    expect(floored.message).toContain('30× the 0.01 floor (the next column, "b", drops it by 0.000)');
    expect(dominantImportance(imp(0.3, 0.05))).toBeUndefined();
    expect(dominantImportance(imp(0.05, 0.001))).toBeUndefined();
    expect(dominantImportance({ metric: 'auroc', repeats: 3, features: [{ feature: 'a', drop: 0.4, std: 0 }] })).toBeUndefined();
  });
});
