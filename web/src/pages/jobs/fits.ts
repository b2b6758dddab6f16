/**
 * The loss curves of a job's live page: one curve (`Fit`) per fit that reports epochs (a fold's
 * model, a searched point's fold, the final fit), built point by point from the job's events.
 * Pure functions, no Preact, so they are unit-tested without a browser.
 */

/** One fit's loss curve (a fold's model, or the final fit), as its epochs arrive. */
export interface Fit {
  /** The stage it was reported under ("mlp fold 2/5", "search: gbdt #12 fold 1/5"). */
  label: string;
  family: string;
  epochs: number[];
  loss: (number | null)[];
  val: (number | null)[];
}

/**
 * Fits kept. A search within a budget fits hundreds or thousands of points on its folds, and
 * nested CV a whole cross-validation per outer fold, each fit a curve: past this many, the oldest
 * searched point's fit goes first, then the oldest nested inner fit, and only then the oldest of
 * the rest (the cross-validation folds the leaderboard shows, the final fit), so the page's
 * memory, its list of fits and the copying each event does stay bounded.
 */
export const MAX_FITS = 40;

/** A searched point's fit ("search: gbdt #12 fold 1/5", also inside nested CV's "nested 2/5: …"). */
const SEARCH = /(^|: )search: /;
/** A fit inside nested CV's outer fold ("nested 2/5: gbdt fold 1/5"). */
const NESTED = /^nested \d+\/\d+: /;

/**
 * The fits after one loss point of the fit reported under `label` (`family` its family): the fit
 * goes on, or a new one begins (another label, or the epochs start over); the same epoch again
 * replaces its point. Returns the new list (the input is not changed), whether a point was
 * added (not replaced), and how many fits were dropped to stay within `MAX_FITS`.
 */
export function addLossPoint(
  fits: readonly Fit[],
  label: string,
  family: string,
  epoch: number,
  loss: number | null,
  val: number | null,
): { fits: Fit[]; added: boolean; dropped: number } {
  const next = [...fits];
  let fit = next[next.length - 1];
  if (!fit || fit.label !== label || fit.epochs[fit.epochs.length - 1]! > epoch) {
    fit = { label, family, epochs: [], loss: [], val: [] };
    next.push(fit);
  } else fit = { ...fit };
  const last = fit.epochs.length - 1;
  let added = false;
  if (last >= 0 && fit.epochs[last] === epoch) {
    fit.loss = [...fit.loss.slice(0, last), loss];
    fit.val = [...fit.val.slice(0, last), val];
  } else {
    fit.epochs = [...fit.epochs, epoch];
    fit.loss = [...fit.loss, loss];
    fit.val = [...fit.val, val];
    added = true;
  }
  next[next.length - 1] = fit;
  let dropped = 0;
  while (next.length > MAX_FITS) {
    // Never the fit in progress (the last one).
    const oldest = (re: RegExp) => next.findIndex((f, j) => j < next.length - 1 && re.test(f.label));
    const i = oldest(SEARCH);
    const k = i >= 0 ? i : oldest(NESTED);
    next.splice(k >= 0 ? k : 0, 1);
    dropped++;
  }
  return { fits: next, added, dropped };
}
