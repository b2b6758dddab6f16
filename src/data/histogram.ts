/**
 * Histograms of a profile's numeric and integer columns: what a page draws as bars.
 *
 * The bins cover the column's bulk, not its extremes: one far value (a 99999 typed for 99.9)
 * would otherwise squeeze every other value into one bar. The range is that of the values within
 * the outlier fences [q1 − 1.5·IQR, q3 + 1.5·IQR] (a box plot's whiskers: the fences ∩ [min, max],
 * drawn in to the values there are, so no bar is empty only because a fence lies past the data);
 * values outside it, the outliers, are counted in `below` and `above` rather than folded into the
 * end bins, so the end bars keep their meaning and a page can show the outliers as counts beside
 * them. When the fences collapse (IQR 0, e.g. a column that is mostly one value) the range is
 * [min, max], and nothing is left out.
 *
 * - numeric: 20 equal-width bins over the range (one bin of width 1 centred on the value when
 *   every value is the same).
 * - integer: bins of a whole number of values each, edges at half-integers, so no bin holds one
 *   more integer than its neighbour. A column whose values span at most 30 integers gets one bin
 *   per integer over [min, max], without clipping (a Likert scale, a count, a 0/1 flag: every
 *   value is a bar, the rare ones included); a wider one is clipped as above and gets one bin per
 *   integer again if the clipped range spans at most 30, else about 20 bins.
 *
 * Counts are exact when every number was seen (a table in memory, or a streaming profile of a
 * column with at most the reservoir's size of numbers). Otherwise they come from the streaming
 * profile's seeded reservoir sample, scaled to the column's count (each bin's share within about
 * ±0.4 percentage points at 65,536 sampled values, 95 %), except one-bin-per-integer columns,
 * whose bins are counted exactly from the profile's value counts whenever those are exact (only
 * how a clipped range's outliers split into `below` and `above` is then estimated). In
 * every case `counts`, `below` and `above` add up to the column's number of numeric values (its
 * non-missing cells less the `invalid` ones).
 */

/** A column's histogram (see the module comment). */
export interface Histogram {
  /** Bin boundaries, increasing: bin i holds values in [edges[i], edges[i+1]) (the last bin is closed). */
  edges: number[];
  /** Values per bin (`edges.length − 1` of them). */
  counts: number[];
  /** Values below `edges[0]` (low outliers, when the range was clipped). */
  below: number;
  /** Values above the range (high outliers, when the range was clipped). */
  above: number;
  /** Whether the counts are exact rather than scaled from a sample. */
  exact: boolean;
}

/** What a histogram needs to know of its column besides the values. */
export interface HistogramInput {
  integer: boolean;
  /** Exact extremes of the whole column. */
  min: number;
  max: number;
  /** Quartiles (from all values or the sample). */
  q1: number;
  q3: number;
  /** How many numbers the column holds; the counts are scaled to it when `values` is a sample. */
  total: number;
  /** Whether `values` holds every number of the column. */
  exact: boolean;
  /**
   * Exact count of an integer value (`undefined` when the column's counts are not exact): used
   * for one-bin-per-integer histograms when `values` is only a sample.
   */
  countOf?: ((v: number) => number) | undefined;
}

/** Numeric columns: bins over the range. */
const BINS = 20;
/** Integer columns spanning at most this many values get one bin per value. */
const PER_VALUE = 30;

/** The bins: first edge, width, count, and the values kept in them [lo, hi]. */
interface Layout {
  e0: number;
  width: number;
  bins: number;
  lo: number;
  hi: number;
}

/** The bins for values whose whiskers (the extremes within the fences) are `lo` and `hi`. */
function layout(o: HistogramInput, lo: number, hi: number): Layout {
  const { min, max, integer } = o;
  if (integer) {
    if (max - min + 1 <= PER_VALUE) return { e0: min - 0.5, width: 1, bins: max - min + 1, lo: min, hi: max };
    if (!(hi > lo)) {
      lo = min;
      hi = max;
    }
    const span = hi - lo + 1;
    const width = span <= PER_VALUE ? 1 : Math.ceil(span / BINS);
    return { e0: lo - 0.5, width, bins: Math.ceil(span / width), lo, hi };
  }
  if (!(hi > lo)) {
    lo = min;
    hi = max;
  }
  if (!(hi > lo)) return { e0: min - 0.5, width: 1, bins: 1, lo: min, hi: max };
  return { e0: lo, width: (hi - lo) / BINS, bins: BINS, lo, hi };
}

/**
 * The histogram of a column from its numbers (all of them, or a sample: see `o.exact`), in two
 * passes over `values` (the whiskers, then the bins) and no copy of them.
 */
export function histogramOf(values: Float64Array, o: HistogramInput): Histogram {
  const iqr = o.q3 - o.q1;
  const fenceLo = o.q1 - 1.5 * iqr;
  const fenceHi = o.q3 + 1.5 * iqr;
  let lo = Infinity;
  let hi = -Infinity;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v >= fenceLo && v <= fenceHi) {
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
  }
  const L = layout(o, lo, hi);
  const edges = new Array<number>(L.bins + 1);
  for (let i = 0; i <= L.bins; i++) edges[i] = L.e0 + i * L.width;
  // Float edges: the last one is the range's end exactly, whatever the rounding of e0 + n·w.
  if (!o.integer && L.bins === BINS) edges[L.bins] = L.hi;
  const perValue = o.integer && L.width === 1;
  if (!o.exact && perValue && o.countOf !== undefined) {
    // The counts of a few integers are known exactly even when the numbers were only sampled.
    const counts = new Array<number>(L.bins);
    let inside = 0;
    for (let i = 0; i < L.bins; i++) inside += counts[i] = o.countOf(L.lo + i);
    const outside = o.total - inside;
    // Outside the bins (a clipped per-value range): split as the sample splits them.
    let sBelow = 0;
    let sAbove = 0;
    for (let i = 0; i < values.length; i++) {
      const v = values[i]!;
      if (v < L.lo) sBelow++;
      else if (v > L.hi) sAbove++;
    }
    const below = sBelow + sAbove > 0 ? Math.round((outside * sBelow) / (sBelow + sAbove)) : 0;
    return { edges, counts, below, above: outside - below, exact: outside === 0 };
  }
  // Slot 0 is `below`, 1..bins the bins, bins + 1 `above`.
  const raw = new Float64Array(L.bins + 2);
  const last = L.bins - 1;
  for (let i = 0; i < values.length; i++) {
    const v = values[i]!;
    if (v < L.lo) raw[0]!++;
    else if (v > L.hi) raw[L.bins + 1]!++;
    else {
      const k = Math.floor((v - L.e0) / L.width);
      raw[1 + (k < 0 ? 0 : k > last ? last : k)]!++;
    }
  }
  const scaled = o.exact || values.length === o.total ? Array.from(raw) : scaleTo(raw, o.total);
  return { edges, counts: scaled.slice(1, L.bins + 1), below: scaled[0]!, above: scaled[L.bins + 1]!, exact: o.exact };
}

/**
 * Counts of a sample scaled to `total` whole values that add up to it exactly: each scaled count
 * rounded down, and the values left over given to the largest remainders (Hamilton's method).
 */
function scaleTo(counts: Float64Array, total: number): number[] {
  let n = 0;
  for (let i = 0; i < counts.length; i++) n += counts[i]!;
  if (n === 0) return Array.from(counts, () => 0);
  const out = new Array<number>(counts.length);
  const rest = new Float64Array(counts.length);
  let given = 0;
  for (let i = 0; i < counts.length; i++) {
    const x = (counts[i]! * total) / n;
    out[i] = Math.floor(x);
    rest[i] = x - out[i]!;
    given += out[i]!;
  }
  // At most `counts.length` values are left over; a linear pick per value keeps this tiny loop simple.
  for (let left = total - given; left > 0; left--) {
    let best = 0;
    for (let i = 1; i < rest.length; i++) if (rest[i]! > rest[best]!) best = i;
    out[best]!++;
    rest[best] = -1;
  }
  return out;
}
