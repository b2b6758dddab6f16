/**
 * `trainTable` itself: which rows every fitted pipeline and every model sees. The data and model
 * rooms are wrapped (not replaced) to record each `fitPipeline` call's rows and each training
 * run's data; everything still runs for real.
 */
import { describe, expect, it, vi } from 'vitest';
import { Rng, type Cell, type Progress } from '../core/index.js';
import { tableFromRows } from '../data/index.js';
import { trainTable } from './train.js';

const rec = vi.hoisted(() => ({
  fits: [] as number[][],
  trains: [] as Array<{ family: string; rows: number; groups?: Int32Array }>,
  /** Every fitted pipeline with the rows it was fitted on, and every transform with its rows. */
  pipes: [] as Array<{ pipeline: { steps: unknown[] }; rows: number[] }>,
  transforms: [] as Array<{ pipeline: { steps: unknown[] }; rows: number[] }>,
}));

vi.mock('../data/index.js', async (importOriginal) => {
  const m = await importOriginal<typeof import('../data/index.js')>();
  return {
    ...m,
    fitPipeline: (...args: Parameters<typeof m.fitPipeline>) => {
      rec.fits.push(Array.from(args[2]));
      const pipeline = m.fitPipeline(...args);
      rec.pipes.push({ pipeline, rows: Array.from(args[2]) });
      return pipeline;
    },
    transformTable: (...args: Parameters<typeof m.transformTable>) => {
      rec.transforms.push({ pipeline: args[0], rows: args[2] ? Array.from(args[2]) : [] });
      return m.transformTable(...args);
    },
  };
});

vi.mock('../models/index.js', async (importOriginal) => {
  const m = await importOriginal<typeof import('../models/index.js')>();
  const wrapped = Object.fromEntries(
    Object.entries(m.FAMILIES).map(([name, f]) => [
      name,
      {
        ...f,
        train: (data: Parameters<typeof f.train>[0], params: Parameters<typeof f.train>[1], ctx: Parameters<typeof f.train>[2]) => {
          rec.trains.push({ family: f.name, rows: data.x.rows, ...(data.groups ? { groups: data.groups } : {}) });
          return f.train(data, params, ctx);
        },
      },
    ]),
  ) as typeof m.FAMILIES;
  return { ...m, FAMILIES: Object.freeze(wrapped), getFamily: (name: string) => (Object.hasOwn(wrapped, name) ? wrapped[name as keyof typeof wrapped] : m.getFamily(name)) };
});

/** A learnable table: `patient` groups of three visits each, a numeric and a categorical feature. */
function visits(patients: number, seed = 1) {
  const rng = new Rng(seed);
  const rows: Cell[][] = [];
  for (let p = 0; p < patients; p++) {
    const base = rng.normal();
    for (let v = 0; v < 3; v++) {
      const x = base + 0.3 * rng.normal();
      rows.push([`P${p}`, v === 1 && rng.next() < 0.3 ? null : x.toFixed(4), rng.next() < 0.5 ? 'a' : 'b', x + 0.5 * rng.normal() > 0 ? 'yes' : 'no']);
    }
  }
  return tableFromRows(['patient', 'x', 'site', 'outcome'], rows, { source: 'visits.csv' });
}

const without = (all: number[], part: number[]) => {
  const s = new Set(part);
  return all.filter((r) => !s.has(r));
};

/** Checks that the complements of `parts` within `whole` are disjoint and together make `whole`. */
function complementsPartition(whole: number[], parts: number[][]): void {
  const seen = new Set<number>();
  for (const p of parts) {
    for (const r of without(whole, p)) {
      expect(seen.has(r)).toBe(false);
      seen.add(r);
    }
  }
  expect([...seen].sort((a, b) => a - b)).toEqual([...whole].sort((a, b) => a - b));
}

describe('trainTable', () => {
  it('fits the pipeline inside every fold, tunes inside every fold with inner refits, and refits on all rows', async () => {
    rec.fits.length = 0;
    rec.trains.length = 0;
    const t = visits(40);
    const r = await trainTable(t, { target: 'outcome', model: 'logistic', cv: 3, seed: 5, ignore: ['patient'], params: { gbdt: { trees: 5 } } });
    // Parameters for a family the training does not try are said to be unused.
    expect(r.warnings).toContainEqual({ code: 'params_unused', message: 'the parameters given for gbdt were not used: gbdt is not among the families this training tries (logistic)' });
    // Per outer fold: its pipeline, then the three inner splits of C's tuning; then the same on all
    // rows. In between, the same folds once more without "x": it dominates the importance, so the
    // leakage check asks what the table scores without it.
    expect(r.leakage.rescore).toMatchObject({ columns: ['x'] });
    expect(rec.fits).toHaveLength(4 * 4 + 3 * 4);
    const blocks = [0, 4, 8, 24];
    const outer = blocks.slice(0, 3).map((i) => rec.fits[i]!);
    const used = rec.fits[24]!;
    expect(r.rows.used).toBe(t.rowCount);
    expect([...used].sort((a, b) => a - b)).toEqual(Array.from({ length: t.rowCount }, (_, i) => i));
    // The outer test rows (complements of the outer training rows) partition the rows used.
    complementsPartition(used, outer);
    for (const [f, o] of [...outer, used].entries()) {
      const inner = rec.fits.slice(blocks[f]! + 1, blocks[f]! + 4);
      // Inner pipelines are fitted on rows of their outer training split only, never all of it...
      for (const i of inner) expect(without(i, o)).toEqual([]);
      // ...and their held-out rows partition it: every inner score is on rows its pipeline did not see.
      complementsPartition(o, inner);
    }
    // Models are trained on exactly the rows their pipeline was fitted on.
    const sizes = rec.fits.map((f) => f.length);
    for (const s of rec.trains.map((x) => x.rows)) expect(sizes).toContain(s);
    expect(rec.trains.at(-1)!.rows).toBe(used.length);
  });

  it('keeps every patient on one side of every split, and hands the MLP its groups', async () => {
    rec.fits.length = 0;
    rec.trains.length = 0;
    const t = visits(40, 2);
    const patientOf = (row: number) => t.data[0]!.text(row)!;
    await trainTable(t, { target: 'outcome', model: 'logistic', cv: 3, seed: 1, group: 'patient' });
    // The final fit on all rows: its pipeline, then its three inner splits.
    const used = rec.fits.at(-4)!;
    expect(used.length).toBe(t.rowCount);
    for (const fit of rec.fits) {
      const inside = new Set(fit.map(patientOf));
      for (const r of without(used, fit)) expect(inside.has(patientOf(r))).toBe(false);
    }
    rec.trains.length = 0;
    await trainTable(t, { target: 'outcome', model: 'mlp', cv: 2, seed: 1, group: 'patient', params: { mlp: { epochs: 3, units: '4' } } });
    const mlpRuns = rec.trains.filter((x) => x.family === 'mlp');
    expect(mlpRuns.length).toBeGreaterThan(0);
    for (const run of mlpRuns) {
      expect(run.groups).toBeInstanceOf(Int32Array);
      expect(run.groups!.length).toBe(run.rows);
      // Three visits a patient: three rows per group id.
      const counts = new Map<number, number>();
      for (const g of run.groups!) counts.set(g, (counts.get(g) ?? 0) + 1);
      expect([...counts.values()].filter((c) => c !== 3), JSON.stringify([...counts.entries()])).toEqual([]);
    }
  });

  it('estimates the whole choice by nested cross-validation when asked', async () => {
    const t = visits(50, 3);
    const plain = await trainTable(t, { target: 'outcome', cv: 3, seed: 2, ignore: ['patient'] });
    expect(plain.nested).toBeUndefined();
    rec.fits.length = 0;
    const r = await trainTable(t, { target: 'outcome', cv: 3, seed: 2, ignore: ['patient'], nested: true });
    expect(r.nested!.folds).toBe(3);
    expect(r.nested!.chosen).toHaveLength(3);
    for (const f of r.nested!.chosen) expect(['logistic', 'gbdt']).toContain(f);
    expect(Number.isFinite(r.nested!.metrics['auroc']!.mean)).toBe(true);
    // The selection's own CV is unchanged by asking for the nested estimate.
    expect(r.cv).toEqual(plain.cv);
    expect(r.leaderboard.map((c) => c.family)).toEqual(plain.leaderboard.map((c) => c.family));
    // Every fit but the final refit (and its tuning) stays inside one outer training split: the
    // nested choice never sees the rows it is scored on.
    const outer = [0, 4, 8].map((i) => rec.fits[i]!);
    const final = rec.fits.findLastIndex((f) => f.length === t.rowCount);
    expect(final).toBeGreaterThan(15);
    for (const fit of rec.fits.slice(0, final)) expect(outer.some((o) => without(fit, o).length === 0)).toBe(true);
  });

  it('trains on more rows than fit in a spread of arguments (130,000)', async () => {
    const rng = new Rng(4);
    const rows: Cell[][] = Array.from({ length: 130_000 }, () => {
      const a = rng.normal();
      const b = rng.normal();
      return [a, b, a - b + rng.normal() > 0 ? 1 : 0];
    });
    const t = tableFromRows(['a', 'b', 'y'], rows);
    rec.pipes.length = 0;
    rec.transforms.length = 0;
    const r = await trainTable(t, { target: 'y', model: 'logistic', cv: 2, params: { logistic: { C: 1 } } });
    expect(r.rows.used).toBe(130_000);
    expect(r.cv.metrics['auroc']!.mean).toBeGreaterThan(0.7);
    // Importance scores a bounded sample of each fold's 65,000 validation rows.
    const permuted = rec.transforms.filter((c) => !rec.pipes.some((p) => p.pipeline === c.pipeline));
    expect(permuted).toHaveLength(2 * 2 * 3);
    for (const c of permuted) expect(c.rows.length).toBe(2000);
    expect(r.report.importance!.features.map((f) => f.feature).sort()).toEqual(['a', 'b']);
  });

  it('stores permutation importance and reliability bins from out-of-fold predictions, shuffling validation rows only', async () => {
    rec.pipes.length = 0;
    rec.transforms.length = 0;
    const t = visits(40, 4);
    const r = await trainTable(t, { target: 'outcome', model: 'gbdt', cv: 3, seed: 1, group: 'patient', params: { gbdt: { trees: '20' } } });
    // Reliability: every out-of-fold probability once, so the bins' counts are the rows used.
    expect(r.report.reliability!.reduce((a, b) => a + b.count, 0)).toBe(r.rows.used);
    expect(r.report.regression).toBeUndefined();
    const imp = r.report.importance!;
    expect(imp).toMatchObject({ metric: 'auroc', repeats: 3 });
    // The group column is no feature: no entry. The signal column ranks first.
    expect(imp.features.map((f) => f.feature).sort()).toEqual(['site', 'x']);
    expect(imp.features[0]!.feature).toBe('x');
    // The shuffles: one column's fitted step applied to permuted rows, each a fold's validation
    // rows (none of the rows that fold's pipeline, and so its model, was fitted on).
    const permuted = rec.transforms.filter((c) => !rec.pipes.some((p) => p.pipeline === c.pipeline));
    expect(permuted).toHaveLength(3 * 2 * 3);
    for (const c of permuted) {
      expect(c.pipeline.steps).toHaveLength(1);
      const owner = rec.pipes.find((p) => p.pipeline.steps.includes(c.pipeline.steps[0]))!;
      expect(owner.rows.length).toBeLessThan(r.rows.used);
      const seen = new Set(owner.rows);
      expect(c.rows.filter((row) => seen.has(row))).toEqual([]);
      expect(c.rows.length + owner.rows.length).toBe(r.rows.used);
    }
  });

  it('ranks the one column that carries signal first, with a clearly positive drop, and noise near 0', async () => {
    const rng = new Rng(9);
    const rows: Cell[][] = Array.from({ length: 400 }, (_, i) => {
      const s = rng.normal();
      return [`R${i}`, s, rng.normal(), rng.normal(), ['a', 'b', 'c'][rng.int(3)]!, s + 0.5 * rng.normal() > 0 ? 'yes' : 'no'];
    });
    const t = tableFromRows(['record', 'signal', 'noise1', 'noise2', 'colour', 'outcome'], rows);
    const r = await trainTable(t, { target: 'outcome', model: 'logistic', cv: 3, seed: 2, params: { logistic: { C: 1 } } });
    const imp = r.report.importance!;
    // `record` is an identifier the schema leaves out: no entry.
    expect(imp.features.map((f) => f.feature).sort()).toEqual(['colour', 'noise1', 'noise2', 'signal']);
    expect(imp.features[0]!.feature).toBe('signal');
    expect(imp.features[0]!.drop).toBeGreaterThan(0.3);
    for (const f of imp.features.slice(1)) expect(Math.abs(f.drop)).toBeLessThan(0.02);
    // Seeded: the same run gives the same numbers.
    const again = await trainTable(t, { target: 'outcome', model: 'logistic', cv: 3, seed: 2, params: { logistic: { C: 1 } } });
    expect(again.report.importance).toEqual(imp);
  });

  it('measures accuracy drops for multiclass, and R² drops with predicted-versus-actual plots for regression', async () => {
    const rng = new Rng(12);
    const rows: Cell[][] = Array.from({ length: 240 }, () => {
      const a = rng.normal();
      const b = rng.normal();
      return [a, b, a < -0.5 ? 'low' : a < 0.5 ? 'mid' : 'high', 3 * a + 0.5 * rng.normal()];
    });
    const t = tableFromRows(['a', 'b', 'band', 'value'], rows);
    const multi = await trainTable(t, { target: 'band', ignore: ['value'], model: 'logistic', cv: 3, params: { logistic: { C: 10 } } });
    expect(multi.report.importance).toMatchObject({ metric: 'accuracy', repeats: 3 });
    expect(multi.report.importance!.features[0]!.feature).toBe('a');
    expect(multi.report.reliability).toBeUndefined();
    const reg = await trainTable(t, { target: 'value', ignore: ['band'], model: 'linear', cv: 3, params: { linear: { alpha: 1 } } });
    expect(reg.report.importance!.metric).toBe('r2');
    expect(reg.report.importance!.features.map((f) => f.feature)).toEqual(['a', 'b']);
    expect(reg.report.importance!.features[0]!.drop).toBeGreaterThan(1);
    expect(reg.report.reliability).toBeUndefined();
    const [plot] = reg.report.regression!;
    expect(plot!.output).toBe('value');
    expect(plot!.counts.reduce((x, y) => x + y, 0)).toBe(reg.rows.used);
    expect(plot!.residuals.reduce((x, g) => x + g.count, 0)).toBe(reg.rows.used);
  });
});

describe('trainTable progress', () => {
  it("reports each family's cross-validated scores once, as it finishes, and the same scores end up in the leaderboard", async () => {
    const seen: Progress[] = [];
    const r = await trainTable(visits(40), { target: 'outcome', cv: 3, seed: 2, ignore: ['patient'], onProgress: (p) => seen.push(p) });
    const candidates = seen.filter((p) => p.candidate).map((p) => p.candidate!);
    expect(candidates.map((c) => c.family).sort()).toEqual(r.leaderboard.map((c) => c.family).sort());
    for (const c of candidates) expect(c.metrics).toEqual(r.leaderboard.find((l) => l.family === c.family)!.metrics);
    // Each arrives after that family's last fold and before the refit on all rows.
    const at = (pred: (p: Progress) => boolean) => seen.findIndex(pred);
    for (const c of candidates) {
      expect(at((p) => p.candidate === c)).toBeGreaterThan(at((p) => p.stage === `${c.family} fold 3/3`));
    }
  });
});
