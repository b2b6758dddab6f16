/**
 * The leakage guard: evidence, found before any model is fitted, that a feature holds the answer
 * rather than a clue to it. A patient number in a file sorted by outcome, a copy of the label, a
 * date recorded after the outcome: each gives a cross-validated score near 1 that a new patient
 * will never see, and a clinician reading that score would ship the model.
 *
 * What is flagged (each a `leakage` warning naming the column, with its numbers):
 * - `single_feature`: one feature alone predicts the target almost perfectly on the training's
 *   own cross-validation folds: univariate out-of-fold AUROC ≥ {@link LEAK_AUROC} (multiclass:
 *   the best class against the rest) or R² ≥ {@link LEAK_R2}. Two univariate "models", each fitted
 *   on a fold's training rows only and scored on its held-out rows: the raw value (its direction
 *   chosen on the training rows; for regression a straight line), and the mean target of the
 *   value's training-quantile bin (or category; missing values are a bin of their own, so a column
 *   that is only filled in for one outcome is caught too). The better mean over folds counts.
 * - `row_order`: the file's row order predicts the target (|Somers' D| of the row number for a
 *   class, |Spearman| for a value, ≥ {@link ROW_ORDER_TARGET}) and a feature tracks the row order
 *   (|Spearman| with the row number ≥ {@link ROW_ORDER_FEATURE}): the file is sorted by outcome,
 *   and a record number predicts it through the sorting.
 * - `post_outcome`: a datetime feature later than the target's own date (a datetime column named
 *   as the target plus a time word: `death_date`, `date_of_death` for `death`) in at least
 *   {@link POST_OUTCOME_SHARE} of the rows where both are known: recorded after the outcome.
 * - `importance` (after training, never a reason to refuse): one column's permutation importance
 *   for the chosen model is at least {@link IMPORTANCE_MIN_DROP} and {@link IMPORTANCE_DOMINANCE}
 *   times every other column's.
 * Columns the schema already leaves out (identifiers, dropped, the group) are not features and not
 * checked. Tables above {@link LEAK_MAX_ROWS} rows are screened on an evenly spaced subset of each
 * fold, so the guard costs a sort per feature, whatever the table's size.
 */
import type { Schema, Task, Warning } from '../core/index.js';
import type { Column, Fold, Table } from '../data/index.js';
import type { PermutationImportance } from '../eval/index.js';

/** Univariate out-of-fold AUROC at or above which one feature is flagged (classification). */
export const LEAK_AUROC = 0.98;
/** Univariate out-of-fold R² at or above which one feature is flagged (regression). */
export const LEAK_R2 = 0.95;
/** |Spearman| of a feature with the row number at or above which it "tracks row order". */
export const ROW_ORDER_FEATURE = 0.9;
/** |Somers' D| (classes) or |Spearman| (values) of the target with the row number from which the file counts as sorted by outcome. */
export const ROW_ORDER_TARGET = 0.5;
/** Share of rows in which a datetime feature is later than the target's date for it to be flagged. */
export const POST_OUTCOME_SHARE = 0.95;
/** Fewest rows with both dates known for that share to count. */
export const POST_OUTCOME_MIN_ROWS = 10;
/** Smallest permutation-importance drop of a dominating column, by the importance metric. */
export const IMPORTANCE_MIN_DROP: Readonly<Record<string, number>> = { auroc: 0.1, accuracy: 0.1, r2: 0.2 };
/** How many times the next column's drop (at least `IMPORTANCE_FLOOR`) the dominating column's must be. */
export const IMPORTANCE_DOMINANCE = 10;
/** The least drop a dominating column's is compared with. */
const IMPORTANCE_FLOOR = 0.01;
/** A drop of the chosen family's CV score without the flagged columns, above which the score is named a likely leak. */
export const LIKELY_LEAK_DROP: Readonly<Record<string, number>> = { auroc: 0.05, r2: 0.1 };
/** Rows screened at most (an evenly spaced subset of each fold above). */
export const LEAK_MAX_ROWS = 20_000;
/** Quantile bins of a numeric feature's training values (plus one for missing values). */
const BINS = 20;
/** Classes checked one against the rest; a target with more is checked on its first ones. */
const MAX_CLASSES = 50;

/** What the guard flags (see the module comment). */
export type LeakageKind = 'single_feature' | 'row_order' | 'post_outcome' | 'importance';

/** One flagged column with its evidence. */
export interface LeakageFinding {
  column: string;
  kind: LeakageKind;
  /** The numbers behind the flag, by name (`auroc`, `r2`, `spearman_row`, `target_row`, `share_later`...). */
  evidence: Record<string, number | string>;
  /** One sentence with the numbers (no record values). */
  message: string;
}

/** A finding as a warning: code `leakage`, its column, kind and evidence kept for JSON readers. */
export interface LeakageWarning extends Warning {
  code: 'leakage';
  column: string;
  kind: LeakageKind;
  evidence: Record<string, number | string>;
}

/** The chosen family scored again without the flagged columns, on the same folds. */
export interface LeakageRescore {
  metric: string;
  /** The chosen family's cross-validated score as trained. */
  with: number;
  /** The same family's score without the flagged feature columns. */
  without: number;
  /** The feature columns left out. */
  columns: string[];
  /** `with` − `without` exceeds {@link LIKELY_LEAK_DROP}: the reported score is likely a leak. */
  likelyLeak: boolean;
}

/** What the guard found in one training run. */
export interface LeakageReport {
  findings: LeakageFinding[];
  /** Rows the screen used (all, or a spaced subset of each fold). */
  rows: number;
  /** Seconds the screen took. */
  seconds: number;
  rescore?: LeakageRescore;
  /** Why the re-score did not run, when a flagged column was a feature. */
  rescoreSkipped?: string;
}

/** What `screenLeakage` reads: the training's own rows, targets and folds. */
export interface LeakageInput {
  table: Table;
  schema: Schema;
  /** Table rows used (ascending: file order). */
  rows: Int32Array;
  /** Targets aligned with `rows`, rows × nOutputs (class indices for classification). */
  y: Float64Array;
  nOutputs: number;
  task: Task;
  nClasses: number;
  targets: string[];
  /** The training's cross-validation folds (indices into `rows`). */
  folds: Fold[];
}

const f3 = (v: number) => v.toFixed(3);

/** Turns a finding into the warning that carries it. */
export function leakageWarning(f: LeakageFinding): LeakageWarning {
  return { code: 'leakage', column: f.column, kind: f.kind, evidence: f.evidence, message: f.message };
}

/**
 * Screens every feature column for leakage before training (`single_feature`, `row_order`,
 * `post_outcome`; see the module comment). Pure arithmetic on the raw columns: nothing is fitted
 * beyond per-fold bin means and straight lines, and no statistic of a held-out row scores it.
 */
export function screenLeakage(inp: LeakageInput): { findings: LeakageFinding[]; rows: number } {
  const { table, schema, rows, y, nOutputs, task, targets, folds } = inp;
  const n = rows.length;
  const stride = Math.max(1, Math.ceil(n / LEAK_MAX_ROWS));
  const m = Math.ceil(n / stride);
  // Each sampled row's table row, fold (the fold that holds it out) and targets.
  const foldOfAll = new Int32Array(n).fill(-1);
  for (const [f, fold] of folds.entries()) for (const i of fold.test) foldOfAll[i] = f;
  const tableRow = new Int32Array(m);
  const fo = new Int32Array(m);
  for (let i = 0; i < m; i++) {
    tableRow[i] = rows[i * stride]!;
    fo[i] = foldOfAll[i * stride]!;
  }
  const k = folds.length;
  // The target(s) as the screen scores them: one 0/1 indicator per class checked, or each output's values.
  const outcomes: Array<{ values: Float64Array; binary: boolean; name: string }> = [];
  if (task === 'regression') {
    for (let j = 0; j < nOutputs; j++) {
      const v = new Float64Array(m);
      for (let i = 0; i < m; i++) v[i] = y[i * stride * nOutputs + j]!;
      outcomes.push({ values: v, binary: false, name: targets[j]! });
    }
  } else {
    const classes = task === 'binary' ? [1] : Array.from({ length: Math.min(inp.nClasses, MAX_CLASSES) }, (_, c) => c);
    for (const c of classes) {
      const v = new Float64Array(m);
      for (let i = 0; i < m; i++) v[i] = y[i * stride] === c ? 1 : 0;
      outcomes.push({ values: v, binary: true, name: targets[0]! });
    }
  }
  const findings: LeakageFinding[] = [];
  const features = schema.columns.filter((c) => c.role === 'feature');
  const target = targets[0]!;

  // Does the file's order predict the target? Row positions are distinct, so no ties.
  let targetOrder = 0;
  for (const o of outcomes) {
    const d = o.binary ? Math.abs(2 * indexAuc(o.values) - 1) : Math.abs(spearmanWithIndex(o.values, presentOrder(o.values)));
    if (d > targetOrder) targetOrder = d;
  }

  for (const c of features) {
    const col = table.data[table.columns.indexOf(c.name)]!;
    const numeric = c.type === 'numeric' || c.type === 'integer' || c.type === 'datetime';
    // One sort per numeric column serves both checks (it is most of the guard's cost).
    const x = numeric ? rawNumbers(col, c.type, tableRow) : undefined;
    const order = x ? presentOrder(x) : undefined;
    const best = x ? screenNumeric(x, order!, fo, k, outcomes) : screenBins(rawCategories(col, tableRow), fo, k, outcomes);
    if (best !== undefined) {
      const metric = task === 'regression' ? 'r2' : 'auroc';
      const cut = task === 'regression' ? LEAK_R2 : LEAK_AUROC;
      if (best.score >= cut) {
        const against = task === 'multiclass' ? ', one class against the rest' : '';
        findings.push({
          column: c.name,
          kind: 'single_feature',
          evidence: { [metric]: round(best.score), threshold: cut, method: best.method, folds: k },
          message: `column "${c.name}" alone predicts "${best.target}" almost perfectly (univariate out-of-fold ${metric === 'r2' ? 'R²' : 'AUROC'} ${f3(best.score)} ≥ ${cut}${against}, ${k} folds): a copy or consequence of the outcome, or a key sorted by it? Leave it out (--ignore ${c.name}, or "ignore" on a job)`,
        });
      }
    }
    if (x && targetOrder >= ROW_ORDER_TARGET) {
      const rho = spearmanWithIndex(x, order!);
      if (Math.abs(rho) >= ROW_ORDER_FEATURE) {
        findings.push({
          column: c.name,
          kind: 'row_order',
          evidence: { spearman_row: round(rho), target_row: round(targetOrder), threshold: ROW_ORDER_FEATURE, target_threshold: ROW_ORDER_TARGET },
          message: `column "${c.name}" follows the file's row order (Spearman ${f3(rho)} with the row number) and so does "${target}" (${task === 'regression' ? 'Spearman' : "Somers' D"} ${f3(targetOrder)}): the file looks sorted by outcome, and "${c.name}" predicts it through the sorting`,
        });
      }
    }
  }
  findings.push(...postOutcome(table, schema, target, tableRow));
  return { findings, rows: m };
}

/**
 * `post_outcome`: datetime features later than the target's own date (see the module comment).
 * The target's date is any datetime column, used or not, named as the target plus time words.
 */
function postOutcome(table: Table, schema: Schema, target: string, tableRow: Int32Array): LeakageFinding[] {
  const out: LeakageFinding[] = [];
  const labelDates = schema.columns.filter((c) => c.type === 'datetime' && c.role !== 'target' && namedAsTimeOf(c.name, target));
  if (labelDates.length === 0) return out;
  for (const ld of labelDates) {
    const l = rawNumbers(table.data[table.columns.indexOf(ld.name)]!, 'datetime', tableRow);
    for (const c of schema.columns) {
      if (c.role !== 'feature' || c.type !== 'datetime' || c.name === ld.name || out.some((f) => f.column === c.name)) continue;
      const x = rawNumbers(table.data[table.columns.indexOf(c.name)]!, 'datetime', tableRow);
      let both = 0;
      let later = 0;
      for (let i = 0; i < x.length; i++) {
        if (x[i] === x[i] && l[i] === l[i]) {
          both++;
          if (x[i]! > l[i]!) later++;
        }
      }
      if (both >= POST_OUTCOME_MIN_ROWS && later >= POST_OUTCOME_SHARE * both) {
        out.push({
          column: c.name,
          kind: 'post_outcome',
          evidence: { share_later: round(later / both), rows: both, target_date: ld.name, threshold: POST_OUTCOME_SHARE },
          message: `column "${c.name}" is later than "${ld.name}" (the date of "${target}") in ${Math.round((100 * later) / both)} % of the ${both} rows with both: recorded after the outcome, it cannot be known when predicting it`,
        });
      }
    }
  }
  return out;
}

const TIME_WORDS = new Set(['date', 'time', 'dt', 'datetime', 'timestamp', 'ts', 'day', 'when']);
const JOINING_WORDS = new Set(['of', 'at', 'on']);

/** `death_date`, `date_of_death`, `DeathTime`, `deathdate` for the target `death`. */
export function namedAsTimeOf(name: string, target: string): boolean {
  const tw = words(target);
  const fw = words(name);
  if (tw.length === 0) return false;
  const rest = [...fw];
  for (const w of tw) {
    const at = rest.indexOf(w);
    if (at < 0) {
      // One word glued to a time word: `deathdate`, `datedeath`.
      const glued = tw.join('');
      return fw.length === 1 && [...TIME_WORDS].some((t) => fw[0] === glued + t || fw[0] === t + glued);
    }
    rest.splice(at, 1);
  }
  return rest.some((w) => TIME_WORDS.has(w)) && rest.every((w) => TIME_WORDS.has(w) || JOINING_WORDS.has(w));
}

/** Lower-case words of a name (`date_of_death` → date, of, death; `DeathDate` → death, date); one pass, no pattern. */
function words(name: string): string[] {
  const out: string[] = [];
  let cur = '';
  for (let i = 0; i < name.length; i++) {
    const ch = name[i]!;
    const lower = ch.toLowerCase();
    const letterOrDigit = lower !== ch.toUpperCase() || (ch >= '0' && ch <= '9');
    if (!letterOrDigit) {
      if (cur) out.push(cur);
      cur = '';
      continue;
    }
    // A capital after a lower-case letter starts a word (deathDate).
    if (ch !== lower && cur !== '' && name[i - 1]! === name[i - 1]!.toLowerCase() && name[i - 1]! !== name[i - 1]!.toUpperCase()) {
      out.push(cur);
      cur = '';
    }
    cur += lower;
  }
  if (cur) out.push(cur);
  return out;
}

/**
 * `importance`: one column dominating the chosen model's permutation importance (see the module
 * comment), or undefined. A warning only: strong single predictors exist, and this is known only
 * after training.
 */
export function dominantImportance(imp: PermutationImportance | undefined): LeakageFinding | undefined {
  if (!imp || imp.features.length < 2) return undefined;
  const min = IMPORTANCE_MIN_DROP[imp.metric];
  if (min === undefined) return undefined;
  const [top, next] = [imp.features[0]!, imp.features[1]!];
  // Drops under 0.01 count as 0.01: a ratio over a next column's noise-level drop says nothing.
  const floored = next.drop < IMPORTANCE_FLOOR;
  const floor = floored ? IMPORTANCE_FLOOR : next.drop;
  if (!(top.drop >= min && top.drop >= IMPORTANCE_DOMINANCE * floor)) return undefined;
  const than = floored ? `the ${IMPORTANCE_FLOOR} floor (the next column, "${next.feature}", drops it by ${f3(next.drop)})` : `the next column's (${f3(next.drop)})`;
  return {
    column: top.feature,
    kind: 'importance',
    evidence: { drop: round(top.drop), next_drop: round(next.drop), next: next.feature, metric: imp.metric, ratio: round(top.drop / floor), ...(floored ? { ratio_of: IMPORTANCE_FLOOR } : {}) },
    message: `column "${top.feature}" dominates the chosen model: shuffling it drops ${imp.metric} by ${f3(top.drop)}, ${Math.round(top.drop / floor)}× ${than}; check that it is not recorded after, or derived from, the outcome`,
  };
}

/** The re-score's verdict as a warning (`likely_leak`), or undefined when the score held. */
export function rescoreWarning(r: LeakageRescore): Warning | undefined {
  if (!r.likelyLeak) return undefined;
  const cols = r.columns.join(',');
  return {
    code: 'likely_leak',
    message: `the cross-validated ${r.metric} ${f3(r.with)} is likely a leak: the same family scores ${f3(r.without)} on the same folds without ${r.columns.map((c) => `"${c}"`).join(', ')}; unless it is known before the outcome, leave it out (--ignore ${cols}, or "ignore" on a job)`,
  };
}

const round = (v: number) => Math.round(v * 1e4) / 1e4;

/** A numeric, integer or datetime column's values on `tableRow` (dates as epoch milliseconds), NaN when missing. */
function rawNumbers(col: Column, type: string, tableRow: Int32Array): Float64Array {
  const x = new Float64Array(tableRow.length);
  for (let i = 0; i < x.length; i++) {
    const r = tableRow[i]!;
    if (type === 'datetime') {
      const k = col.code(r);
      x[i] = k >= 0 ? col.dict.dates[k]! : NaN;
    } else x[i] = col.number(r);
  }
  return x;
}

/** Any column as categories (numbers by value, texts by dictionary entry), -1 when missing; with their count. */
function rawCategories(col: Column, tableRow: Int32Array): { bin: Int32Array; nBins: number } {
  const bin = new Int32Array(tableRow.length);
  const numbers = new Map<number, number>();
  let next = col.dict.size;
  for (let i = 0; i < bin.length; i++) {
    const r = tableRow[i]!;
    const k = col.code(r);
    if (k >= 0) bin[i] = k;
    else {
      const v = col.number(r);
      if (v !== v) bin[i] = -1;
      else {
        let id = numbers.get(v);
        if (id === undefined) numbers.set(v, (id = next++));
        bin[i] = id;
      }
    }
  }
  // Missing is a category of its own: the last.
  for (let i = 0; i < bin.length; i++) if (bin[i] === -1) bin[i] = next;
  return { bin, nBins: next + 1 };
}

type Outcome = { values: Float64Array; binary: boolean; name: string };
type Best = { score: number; method: string; target: string } | undefined;

/** Positions of present values sorted by value (ties adjacent). */
function presentOrder(x: Float64Array): Int32Array {
  let n = 0;
  for (let i = 0; i < x.length; i++) if (x[i] === x[i]) n++;
  const order = new Int32Array(n);
  n = 0;
  for (let i = 0; i < x.length; i++) if (x[i] === x[i]) order[n++] = i;
  return order.sort((a, b) => x[a]! - x[b]! || a - b);
}

/**
 * The best univariate out-of-fold score of a numeric column (`order`: its present values' positions
 * in value order): its raw value and its quantile bins.
 */
function screenNumeric(x: Float64Array, order: Int32Array, fo: Int32Array, k: number, outcomes: Outcome[]): Best {
  const m = x.length;
  // Missing values take the median of the present ones, as an imputing pipeline would give them:
  // in value order they join the median's ties (no second sort).
  const median = order.length ? x[order[order.length >> 1]!]! : 0;
  const filled = Float64Array.from(x, (v) => (v === v ? v : median));
  let allOrder = order;
  if (order.length < m) {
    allOrder = new Int32Array(m);
    let at = 0;
    let o = 0;
    while (o < order.length && x[order[o]!]! <= median) allOrder[at++] = order[o++]!;
    for (let i = 0; i < m; i++) if (x[i] !== x[i]) allOrder[at++] = i;
    while (o < order.length) allOrder[at++] = order[o++]!;
  }
  let best: Best;
  const take = (score: number, method: string, target: string) => {
    if (score === score && (best === undefined || score > best.score)) best = { score, method, target };
  };
  // Each fold's quantile bins of its training values (the missing values' bin is BINS).
  const bins: Int32Array[] = [];
  for (let f = 0; f < k; f++) {
    const bin = new Int32Array(m).fill(BINS);
    let nTrain = 0;
    for (const i of order) if (fo[i] !== f) nTrain++;
    let below = 0;
    for (let a = 0; a < order.length; ) {
      let b = a;
      let trainHere = 0;
      while (b < order.length && x[order[b]!] === x[order[a]!]) {
        if (fo[order[b]!] !== f) trainHere++;
        b++;
      }
      const q = nTrain > 0 ? Math.min(BINS - 1, Math.floor((below * BINS) / nTrain)) : 0;
      for (let c = a; c < b; c++) bin[order[c]!] = q;
      below += trainHere;
      a = b;
    }
    bins.push(bin);
  }
  for (const o of outcomes) {
    const binned = meanOver(k, (f) => binScore(bins[f]!, BINS + 1, fo, f, o));
    take(binned, 'quantile bins', o.name);
    const raw = meanOver(k, (f) => (o.binary ? rawAuc(filled, allOrder, fo, f, o.values) : lineR2(filled, fo, f, o.values)));
    take(raw, o.binary ? 'raw value' : 'straight line', o.name);
  }
  return best;
}

/** The best univariate out-of-fold score of a categorical or boolean column: each category's training mean. */
function screenBins(cats: { bin: Int32Array; nBins: number }, fo: Int32Array, k: number, outcomes: Outcome[]): Best {
  let best: Best;
  for (const o of outcomes) {
    const s = meanOver(k, (f) => binScore(cats.bin, cats.nBins, fo, f, o));
    if (s === s && (best === undefined || s > best.score)) best = { score: s, method: 'category means', target: o.name };
  }
  return best;
}

/** Mean over folds of a per-fold score, NaN folds (one class held out) left out. */
function meanOver(k: number, score: (f: number) => number): number {
  let sum = 0;
  let n = 0;
  for (let f = 0; f < k; f++) {
    const s = score(f);
    if (s === s) {
      sum += s;
      n++;
    }
  }
  return n ? sum / n : NaN;
}

/**
 * Fold `f`'s held-out score of "the mean outcome of the row's bin over the fold's training rows"
 * (smoothed towards the training mean by one row): AUROC for a 0/1 outcome, R² for a value.
 */
function binScore(bin: Int32Array, nBins: number, fo: Int32Array, f: number, o: Outcome): number {
  const sum = new Float64Array(nBins);
  const count = new Float64Array(nBins);
  let total = 0;
  let nTrain = 0;
  const v = o.values;
  for (let i = 0; i < bin.length; i++) {
    if (fo[i] === f) continue;
    sum[bin[i]!]! += v[i]!;
    count[bin[i]!]!++;
    total += v[i]!;
    nTrain++;
  }
  if (nTrain === 0) return NaN;
  const prior = total / nTrain;
  const score = new Float64Array(nBins);
  for (let b = 0; b < nBins; b++) score[b] = (sum[b]! + prior) / (count[b]! + 1);
  if (o.binary) {
    // AUROC over bins: held-out positives and negatives per bin, bins ranked by their score.
    const pos = new Float64Array(nBins);
    const neg = new Float64Array(nBins);
    for (let i = 0; i < bin.length; i++) {
      if (fo[i] !== f) continue;
      if (v[i] === 1) pos[bin[i]!]!++;
      else neg[bin[i]!]!++;
    }
    const used: number[] = [];
    for (let b = 0; b < nBins; b++) if (pos[b]! + neg[b]! > 0) used.push(b);
    used.sort((a, b) => score[a]! - score[b]!);
    return groupedAuc(used.map((b) => score[b]!), used.map((b) => pos[b]!), used.map((b) => neg[b]!));
  }
  let ss = 0;
  let st = 0;
  let mean = 0;
  let nt = 0;
  for (let i = 0; i < bin.length; i++) if (fo[i] === f) {
    mean += v[i]!;
    nt++;
  }
  if (nt < 2) return NaN;
  mean /= nt;
  for (let i = 0; i < bin.length; i++) if (fo[i] === f) {
    ss += (v[i]! - score[bin[i]!]!) ** 2;
    st += (v[i]! - mean) ** 2;
  }
  return st > 0 ? 1 - ss / st : NaN;
}

/** AUROC from groups in ascending score order (equal scores may repeat: they are merged), with positives and negatives per group. */
function groupedAuc(scores: number[], pos: number[], neg: number[]): number {
  let P = 0;
  let N = 0;
  for (let g = 0; g < pos.length; g++) {
    P += pos[g]!;
    N += neg[g]!;
  }
  if (P === 0 || N === 0) return NaN;
  let below = 0;
  let area = 0;
  for (let g = 0; g < scores.length; ) {
    let h = g;
    let p = 0;
    let q = 0;
    while (h < scores.length && scores[h] === scores[g]) {
      p += pos[h]!;
      q += neg[h]!;
      h++;
    }
    area += p * below + 0.5 * p * q;
    below += q;
    g = h;
  }
  return area / (P * N);
}

/**
 * Fold `f`'s held-out AUROC of the raw value, its direction (larger or smaller means positive)
 * chosen by the training rows' AUROC. `order` sorts all rows by `x`.
 */
function rawAuc(x: Float64Array, order: Int32Array, fo: Int32Array, f: number, v: Float64Array): number {
  const train = { P: 0, N: 0, below: 0, area: 0 };
  const test = { P: 0, N: 0, below: 0, area: 0 };
  for (let a = 0; a < order.length; ) {
    let b = a;
    let tp = 0;
    let tn = 0;
    let hp = 0;
    let hn = 0;
    while (b < order.length && x[order[b]!] === x[order[a]!]) {
      const i = order[b]!;
      const held = fo[i] === f;
      if (v[i] === 1) {
        if (held) hp++;
        else tp++;
      } else if (held) hn++;
      else tn++;
      b++;
    }
    train.area += tp * train.below + 0.5 * tp * tn;
    train.below += tn;
    train.P += tp;
    train.N += tn;
    test.area += hp * test.below + 0.5 * hp * hn;
    test.below += hn;
    test.P += hp;
    test.N += hn;
    a = b;
  }
  if (test.P === 0 || test.N === 0) return NaN;
  const trainAuc = train.P > 0 && train.N > 0 ? train.area / (train.P * train.N) : 0.5;
  const auc = test.area / (test.P * test.N);
  return trainAuc >= 0.5 ? auc : 1 - auc;
}

/** Fold `f`'s held-out R² of a least-squares line fitted on its training rows. */
function lineR2(x: Float64Array, fo: Int32Array, f: number, v: Float64Array): number {
  let n = 0;
  let sx = 0;
  let sy = 0;
  for (let i = 0; i < x.length; i++) if (fo[i] !== f) {
    n++;
    sx += x[i]!;
    sy += v[i]!;
  }
  if (n < 2) return NaN;
  const mx = sx / n;
  const my = sy / n;
  let sxy = 0;
  let sxx = 0;
  for (let i = 0; i < x.length; i++) if (fo[i] !== f) {
    sxy += (x[i]! - mx) * (v[i]! - my);
    sxx += (x[i]! - mx) ** 2;
  }
  const slope = sxx > 0 ? sxy / sxx : 0;
  let nt = 0;
  let mt = 0;
  for (let i = 0; i < x.length; i++) if (fo[i] === f) {
    nt++;
    mt += v[i]!;
  }
  if (nt < 2) return NaN;
  mt /= nt;
  let ss = 0;
  let st = 0;
  for (let i = 0; i < x.length; i++) if (fo[i] === f) {
    ss += (v[i]! - (my + slope * (x[i]! - mx))) ** 2;
    st += (v[i]! - mt) ** 2;
  }
  return st > 0 ? 1 - ss / st : NaN;
}

/** AUROC of the row position as a score for a 0/1 outcome (positions are distinct: rank sums). */
function indexAuc(v: Float64Array): number {
  let P = 0;
  let rankSum = 0;
  for (let i = 0; i < v.length; i++) if (v[i] === 1) {
    P++;
    rankSum += i + 1;
  }
  const N = v.length - P;
  return P === 0 || N === 0 ? 0.5 : (rankSum - (P * (P + 1)) / 2) / (P * N);
}

/**
 * Spearman correlation of the present values of `x` with their row positions: the Pearson
 * correlation of their average ranks (ties share one) with the positions' ranks. `order` sorts
 * the present positions by value. 0 when either is constant.
 */
function spearmanWithIndex(x: Float64Array, order: Int32Array): number {
  const n = order.length;
  if (n < 3) return 0;
  const rank = new Float64Array(x.length);
  for (let a = 0; a < n; ) {
    let b = a;
    while (b < n && x[order[b]!] === x[order[a]!]) b++;
    const r = (a + b + 1) / 2; // 1-based average rank of the tie group
    for (let c = a; c < b; c++) rank[order[c]!] = r;
    a = b;
  }
  // Positions' ranks among the present values: their count so far, in file order.
  let p = 0;
  let sxy = 0;
  let sxx = 0;
  let syy = 0;
  const mean = (n + 1) / 2;
  for (let i = 0; i < x.length; i++) {
    if (x[i] !== x[i]) continue;
    p++;
    const dx = rank[i]! - mean;
    const dy = p - mean;
    sxy += dx * dy;
    sxx += dx * dx;
    syy += dy * dy;
  }
  return sxx > 0 && syy > 0 ? sxy / Math.sqrt(sxx * syy) : 0;
}
