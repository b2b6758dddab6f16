import { describe, expect, it } from 'vitest';
import { addLossPoint, MAX_FITS, type Fit } from '../web/src/pages/jobs/fits.js';

/** The fits after `points` ([label, epoch, loss]) from none. */
function run(points: [string, number, number][]): { fits: Fit[]; added: number; dropped: number } {
  let fits: Fit[] = [];
  let added = 0;
  let dropped = 0;
  for (const [label, epoch, loss] of points) {
    const r = addLossPoint(fits, label, label.includes('gbdt') ? 'gbdt' : 'mlp', epoch, loss, null);
    fits = r.fits;
    added += r.added ? 1 : 0;
    dropped += r.dropped;
  }
  return { fits, added, dropped };
}

describe("the job page's loss curves", () => {
  it('continues a fit, starts one on a new stage or when the epochs start over, and replaces a repeated epoch', () => {
    const before: Fit[] = [];
    const { fits, added } = run([
      ['mlp fold 1/2', 1, 0.9],
      ['mlp fold 1/2', 2, 0.8],
      ['mlp fold 1/2', 2, 0.75],
      ['mlp fold 2/2', 1, 0.95],
      ['mlp on all rows', 1, 0.7],
      ['mlp on all rows', 1, 0.69],
      ['mlp on all rows', 0, 0.9],
    ]);
    expect(fits.map((f) => [f.label, f.epochs.length])).toEqual([
      ['mlp fold 1/2', 2],
      ['mlp fold 2/2', 1],
      ['mlp on all rows', 1],
      ['mlp on all rows', 1],
    ]);
    expect(fits[0]!.loss).toEqual([0.9, 0.75]);
    expect(fits[2]!.loss).toEqual([0.69]);
    expect(added).toBe(5);
    expect(addLossPoint(before, 'x', 'mlp', 1, 1, null).fits).not.toBe(before);
    expect(before).toEqual([]);
  });

  it(`keeps at most ${MAX_FITS} fits, dropping searched points' oldest first, never the defaults' folds, the final fit or the fit in progress`, () => {
    const points: [string, number, number][] = [['gbdt fold 1/5', 10, 0.6], ['gbdt fold 2/5', 10, 0.6]];
    for (let t = 1; t <= 300; t++) for (let f = 1; f <= 3; f++) points.push([`search: gbdt #${t} fold ${f}/5`, 10, 0.5], [`search: gbdt #${t} fold ${f}/5`, 20, 0.4]);
    points.push(['nested 1/5: search: gbdt #1 fold 1/5', 10, 0.5], ['gbdt on all rows', 10, 0.3], ['gbdt on all rows', 20, 0.2]);
    const { fits, dropped } = run(points);
    expect(fits.length).toBe(MAX_FITS);
    expect(dropped).toBe(2 + 900 + 1 + 1 - MAX_FITS);
    expect(fits.slice(0, 2).map((f) => f.label)).toEqual(['gbdt fold 1/5', 'gbdt fold 2/5']);
    expect(fits[fits.length - 1]).toMatchObject({ label: 'gbdt on all rows', epochs: [10, 20] });
    // The newest searched points' fits are the ones kept, with their points.
    expect(fits[fits.length - 2]!.label).toBe('nested 1/5: search: gbdt #1 fold 1/5');
    expect(fits[fits.length - 3]).toMatchObject({ label: 'search: gbdt #300 fold 3/5', epochs: [10, 20] });
  });

  it("drops nested CV's inner fits before the folds the leaderboard shows (nested CV, no budget)", () => {
    const points: [string, number, number][] = [];
    for (let f = 1; f <= 5; f++) points.push([`mlp fold ${f}/5`, 1, 0.5]);
    for (let o = 1; o <= 5; o++) for (const fam of ['gbdt', 'mlp']) for (let f = 1; f <= 5; f++) points.push([`nested ${o}/5: ${fam} fold ${f}/5`, 1, 0.5]);
    points.push(['mlp on all rows', 1, 0.4]);
    const { fits, dropped } = run(points);
    expect(dropped).toBe(5 + 50 + 1 - MAX_FITS);
    expect(fits.slice(0, 5).map((f) => f.label)).toEqual([1, 2, 3, 4, 5].map((f) => `mlp fold ${f}/5`));
    expect(fits[fits.length - 1]!.label).toBe('mlp on all rows');
    // The 16 oldest inner fits went: outer fold 1's ten, then fold 2's gbdt five and its first mlp one.
    expect(MAX_FITS).toBe(40);
    expect(fits[5]!.label).toBe('nested 2/5: mlp fold 2/5');
  });

  it('drops the oldest fit when none is a searched point or a nested inner fit', () => {
    const points: [string, number, number][] = [];
    for (let f = 1; f <= MAX_FITS + 5; f++) points.push([`mlp fold ${f}/${MAX_FITS + 5}`, 1, 0.5]);
    const { fits, dropped } = run(points);
    expect(dropped).toBe(5);
    expect(fits[0]!.label).toBe(`mlp fold 6/${MAX_FITS + 5}`);
  });
});
