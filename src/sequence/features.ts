/**
 * Window features: per-window statistical, autocorrelation and spectral features of each channel
 * (and of the magnitude of each x/y/z triple), the input of the `window-gbdt` family. One function
 * computes them in training and in serving (before ONNX Runtime runs the trees), so the two
 * cannot drift; `scripts/window_features_golden.py` computes the same values in numpy.
 *
 * For each series (a channel, or a triple's magnitude `sqrt(x² + y² + z²)`) of `n` steps:
 * - `mean`, `std` (population), `min`, `max`, `p10` `p25` `p50` `p75` `p90` (linear
 *   interpolation between order statistics at `q·(n−1)`, numpy's default), `range`, `iqr`,
 *   `rms`, `skew` (m3 / m2^1.5), `kurt` (excess: m4 / m2² − 3), `mean_abs_diff` (mean |x[i+1] − x[i]|),
 *   `mcr` (mean-crossing rate: sign changes of x − mean, x ≥ mean counting as positive, over n − 1);
 * - `ac1`: the autocorrelation at lag 1; `ac_peak_lag` (seconds) and `ac_peak`: the lag of the
 *   strongest autocorrelation among lags of 0.25–2 s (cadences of 0.5–4 Hz: steps, strides, heart
 *   beats), at most three quarters of the window, and its value. The autocorrelation at lag k is
 *   `Σ d[i]·d[i+k] / Σ d[i]²` with `d = x − mean` (the biased estimator);
 * - spectral features of the power `|X[k]|²`, k = 1 … N/2, of the real FFT of the mean-removed,
 *   periodic-Hann-windowed series zero-padded to the next power of two N (bin k is at k·rate/N Hz;
 *   the DC bin is left out): `dom_freq` (Hz, the strongest bin), `dom_power` (its share of the
 *   power), `spec_entropy` (Shannon entropy of the power shares over log(N/2), in [0, 1]),
 *   `spec_centroid` (Hz), and the relative power in the bands `band_lt0p5` [0, 0.5), `band_0p5_3`
 *   [0.5, 3), `band_3_8` [3, 8) and `band_ge8` [8, ∞) Hz.
 * Then, for each triple, the Pearson correlations of its axes: `corr_ax_ay`, `corr_ax_az`, `corr_ay_az`.
 *
 * A series that is constant over a window (min = max) has std, skew, kurt, mcr, autocorrelations,
 * spectral features and correlations 0, never NaN. A series with a NaN or infinite value (or
 * values beyond ~1e154, whose squares overflow) has all its features NaN, and so do the
 * correlations of such a channel (the trees route NaN as ONNX Runtime does).
 *
 * Triples are found by name: three channels `<prefix>x`, `<prefix>y`, `<prefix>z` (or `X Y Z`),
 * in the order of their x channel: `ax ay az` → `amag`, `gx gy gz` → `gmag`, `accel_x accel_y
 * accel_z` → `accel_mag`.
 */
import { Errors, type Matrix } from '../core/index.js';

/** The window shape (structurally the models room's `SequenceShape`). */
export interface WindowShape {
  steps: number;
  channels: number;
  /** Samples per second. */
  rate: number;
  /** Channel names in column order. */
  channelNames: string[];
}

/**
 * The version of the feature definitions. A change to any feature's definition (not only its
 * name) increments it, so a model trained on the old features refuses to load.
 */
export const WINDOW_FEATURES_VERSION = 1;

/** The per-series features, in output order. */
export const SERIES_FEATURES = [
  'mean',
  'std',
  'min',
  'max',
  'p10',
  'p25',
  'p50',
  'p75',
  'p90',
  'range',
  'iqr',
  'rms',
  'skew',
  'kurt',
  'mean_abs_diff',
  'mcr',
  'ac1',
  'ac_peak_lag',
  'ac_peak',
  'dom_freq',
  'dom_power',
  'spec_entropy',
  'spec_centroid',
  'band_lt0p5',
  'band_0p5_3',
  'band_3_8',
  'band_ge8',
] as const;

const NF = SERIES_FEATURES.length;
/** Upper edges (Hz) of the first bands; the last band is open. */
const BAND_EDGES = [0.5, 3, 8];
const N_BANDS = BAND_EDGES.length + 1;
const PERCENTILES = [0.1, 0.25, 0.5, 0.75, 0.9];
/** Autocorrelation peak search: lags of 0.25 s to 2 s, at most 3/4 of the window. */
const AC_MIN_SECONDS = 0.25;
const AC_MAX_SECONDS = 2;

interface Triple {
  axes: [number, number, number];
  name: string;
}

/** Checks a window shape; throws `Errors.badData`. */
function checkShape(shape: WindowShape): void {
  const bad = (m: string) => Errors.badData('', `window shape: ${m}`);
  if (shape === null || typeof shape !== 'object') throw bad('not an object');
  const { steps, channels, rate, channelNames } = shape;
  if (!Number.isInteger(steps) || steps < 1) throw bad('steps must be a positive integer');
  if (!Number.isInteger(channels) || channels < 1) throw bad('channels must be a positive integer');
  if (typeof rate !== 'number' || !Number.isFinite(rate) || rate <= 0) throw bad('rate must be a positive number');
  if (!Array.isArray(channelNames) || channelNames.length !== channels)
    throw bad(`channelNames must list ${channels} channel name(s)`);
  const seen = new Set<string>();
  for (const name of channelNames) {
    if (typeof name !== 'string' || name === '') throw bad('channel names must be non-empty strings');
    if (seen.has(name)) throw bad(`channel name "${name}" appears twice`);
    seen.add(name);
  }
}

/** The x/y/z triples among the channels, with their magnitude series' names. */
function findTriples(names: string[]): Triple[] {
  const index = new Map(names.map((n, i) => [n, i]));
  const used = new Set(names);
  const out: Triple[] = [];
  for (let i = 0; i < names.length; i++) {
    const name = names[i]!;
    const last = name[name.length - 1];
    if (last !== 'x' && last !== 'X') continue;
    const prefix = name.slice(0, -1);
    const iy = index.get(prefix + (last === 'x' ? 'y' : 'Y'));
    const iz = index.get(prefix + (last === 'x' ? 'z' : 'Z'));
    if (iy === undefined || iz === undefined) continue;
    let mag = `${prefix}mag`;
    while (used.has(mag)) mag += '_';
    used.add(mag);
    out.push({ axes: [i, iy, iz], name: mag });
  }
  return out;
}

/** The names of the features `windowFeatures` computes for `shape`, in column order. */
export function windowFeatureNames(shape: WindowShape): string[] {
  checkShape(shape);
  const names: string[] = [];
  const triples = findTriples(shape.channelNames);
  const series = [...shape.channelNames, ...triples.map((t) => t.name)];
  for (const s of series) for (const f of SERIES_FEATURES) names.push(`${s}_${f}`);
  for (const t of triples) {
    const [a, b, c] = t.axes.map((i) => shape.channelNames[i]!) as [string, string, string];
    names.push(`corr_${a}_${b}`, `corr_${a}_${c}`, `corr_${b}_${c}`);
  }
  return names;
}

/** Everything fixed by the shape: FFT tables, window, bin bands, lag range, and scratch buffers. */
interface Plan {
  n: number;
  rate: number;
  /** FFT length (a power of two ≥ n, at least 2) and its half. */
  N: number;
  M: number;
  hann: Float64Array;
  /** cos/sin(2πk/N), k = 0 … M: the real-FFT split. */
  cosN: Float64Array;
  sinN: Float64Array;
  /** cos/sin(2πj/M), j < M/2: the complex FFT of size M. */
  cosM: Float64Array;
  sinM: Float64Array;
  rev: Uint32Array;
  /** Band and frequency (Hz) of bins 0 … M. */
  band: Uint8Array;
  freq: Float64Array;
  lagLo: number;
  lagHi: number;
  /** The order statistics the percentiles read (ascending, distinct). */
  targets: Int32Array;
  // scratch
  sorted: Float64Array;
  d: Float64Array;
  re: Float64Array;
  im: Float64Array;
  power: Float64Array;
  bands: Float64Array;
}

function makePlan(n: number, rate: number): Plan {
  let N = 2;
  while (N < n) N *= 2;
  const M = N / 2;
  const hann = new Float64Array(n);
  for (let i = 0; i < n; i++) hann[i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n);
  const cosN = new Float64Array(M + 1);
  const sinN = new Float64Array(M + 1);
  for (let k = 0; k <= M; k++) {
    cosN[k] = Math.cos((2 * Math.PI * k) / N);
    sinN[k] = Math.sin((2 * Math.PI * k) / N);
  }
  const half = Math.max(1, M / 2);
  const cosM = new Float64Array(half);
  const sinM = new Float64Array(half);
  for (let j = 0; j < M / 2; j++) {
    cosM[j] = Math.cos((2 * Math.PI * j) / M);
    sinM[j] = Math.sin((2 * Math.PI * j) / M);
  }
  const bits = Math.round(Math.log2(M));
  const rev = new Uint32Array(M);
  for (let i = 0; i < M; i++) {
    let r = 0;
    for (let b = 0; b < bits; b++) r |= ((i >> b) & 1) << (bits - 1 - b);
    rev[i] = r;
  }
  const band = new Uint8Array(M + 1);
  const freq = new Float64Array(M + 1);
  for (let k = 0; k <= M; k++) {
    const f = (k * rate) / N;
    freq[k] = f;
    let b = 0;
    while (b < BAND_EDGES.length && f >= BAND_EDGES[b]!) b++;
    band[k] = b;
  }
  const lagLo = Math.max(1, Math.ceil(AC_MIN_SECONDS * rate));
  const lagHi = Math.min(Math.floor(AC_MAX_SECONDS * rate), Math.floor(0.75 * n));
  const order = new Set<number>();
  for (const q of PERCENTILES) {
    const pos = q * (n - 1);
    order.add(Math.floor(pos));
    order.add(Math.min(Math.floor(pos) + 1, n - 1));
  }
  const targets = Int32Array.from([...order].sort((a, b) => a - b));
  return {
    n,
    rate,
    N,
    M,
    hann,
    cosN,
    sinN,
    cosM,
    sinM,
    rev,
    band,
    freq,
    lagLo,
    lagHi,
    targets,
    sorted: new Float64Array(n),
    d: new Float64Array(n),
    re: new Float64Array(M),
    im: new Float64Array(M),
    power: new Float64Array(M + 1),
    bands: new Float64Array(N_BANDS),
  };
}

/**
 * In-place iterative radix-2 complex FFT of `re + i·im` (length M, a power of two), forward
 * (e^{−2πijk/M}).
 */
function fftInPlace(p: Plan): void {
  const { M, re, im, rev, cosM, sinM } = p;
  for (let i = 0; i < M; i++) {
    const j = rev[i]!;
    if (j > i) {
      let t = re[i]!;
      re[i] = re[j]!;
      re[j] = t;
      t = im[i]!;
      im[i] = im[j]!;
      im[j] = t;
    }
  }
  for (let size = 2; size <= M; size *= 2) {
    const halfSize = size / 2;
    const step = M / size;
    for (let start = 0; start < M; start += size) {
      for (let j = 0; j < halfSize; j++) {
        const wr = cosM[j * step]!;
        const wi = -sinM[j * step]!;
        const a = start + j;
        const b = a + halfSize;
        const br = re[b]!;
        const bi = im[b]!;
        const tr = br * wr - bi * wi;
        const ti = br * wi + bi * wr;
        re[b] = re[a]! - tr;
        im[b] = im[a]! - ti;
        re[a] = re[a]! + tr;
        im[a] = im[a]! + ti;
      }
    }
  }
}

/**
 * Power |X[k]|², k = 0 … N/2, of the real FFT of `p.d` (length n) times the Hann window,
 * zero-padded to N: the N reals are packed as N/2 complex values, transformed, and split.
 */
function powerSpectrum(p: Plan): void {
  const { n, M, d, hann, re, im, cosN, sinN, power } = p;
  for (let j = 0; j < M; j++) {
    const i0 = 2 * j;
    const i1 = i0 + 1;
    re[j] = i0 < n ? d[i0]! * hann[i0]! : 0;
    im[j] = i1 < n ? d[i1]! * hann[i1]! : 0;
  }
  fftInPlace(p);
  for (let k = 0; k <= M; k++) {
    const ka = k === M ? 0 : k;
    const kb = k === 0 ? 0 : M - k;
    const ar = re[ka]!;
    const ai = im[ka]!;
    const br = re[kb]!;
    const bi = im[kb]!;
    // X[k] = E + W^k·O with E = (Z[k] + conj Z[M−k]) / 2, O = (Z[k] − conj Z[M−k]) / 2i, W = e^{−2πi/N}.
    const er = (ar + br) / 2;
    const ei = (ai - bi) / 2;
    const or = (ai + bi) / 2;
    const oi = -(ar - br) / 2;
    const wr = cosN[k]!;
    const wi = -sinN[k]!;
    const xr = er + wr * or - wi * oi;
    const xi = ei + wr * oi + wi * or;
    power[k] = xr * xr + xi * xi;
  }
}

/** Writes the NF features of `series` (length p.n) into `out` from `off`. */
function seriesFeatures(p: Plan, series: Float64Array, out: Float64Array, off: number): void {
  const { n, sorted, d } = p;
  let sum = 0;
  let sumSq = 0;
  let absDiff = 0;
  let min = Infinity;
  let max = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = series[i]!;
    if (v < min) min = v;
    if (v > max) max = v;
    sum += v;
    sumSq += v * v;
    sorted[i] = v;
    if (i > 0) absDiff += Math.abs(v - series[i - 1]!);
  }
  if (!Number.isFinite(sumSq)) {
    // A NaN or infinite value (or values beyond ~1e154): this series' features are undefined.
    out.fill(NaN, off, off + NF);
    return;
  }
  selectRange(sorted, 0, n - 1, p.targets, 0, p.targets.length);
  const constant = min === max;
  const mean = constant ? min : sum / n;
  let m2 = 0;
  let m3 = 0;
  let m4 = 0;
  let crossings = 0;
  for (let i = 0; i < n; i++) {
    const v = constant ? 0 : series[i]! - mean;
    d[i] = v;
    const v2 = v * v;
    m2 += v2;
    m3 += v2 * v;
    m4 += v2 * v2;
    if (i > 0 && v >= 0 !== d[i - 1]! >= 0) crossings++;
  }
  const ss = m2;
  m2 /= n;
  m3 /= n;
  m4 /= n;
  out[off] = mean;
  out[off + 1] = Math.sqrt(m2);
  out[off + 2] = min;
  out[off + 3] = max;
  for (let q = 0; q < PERCENTILES.length; q++) out[off + 4 + q] = quantileSelected(sorted, n, PERCENTILES[q]!);
  out[off + 9] = max - min;
  out[off + 10] = out[off + 7]! - out[off + 5]!;
  out[off + 11] = Math.sqrt(sumSq / n);
  // m2 can underflow to 0 (or m2² to 0) for deviations below ~1e-154: those count as constant.
  const skew = constant || m2 === 0 ? 0 : m3 / (m2 * Math.sqrt(m2));
  const kurt = constant || m2 === 0 ? 0 : m4 / (m2 * m2) - 3;
  out[off + 12] = skew === Infinity || skew === -Infinity ? 0 : skew;
  out[off + 13] = kurt === Infinity || kurt === -Infinity ? 0 : kurt;
  out[off + 14] = n > 1 ? absDiff / (n - 1) : 0;
  out[off + 15] = n > 1 ? crossings / (n - 1) : 0;

  // Autocorrelation at lag 1 and its peak over the cadence lags.
  let ac1 = 0;
  let peakLag = 0;
  let peak = 0;
  if (ss > 0) {
    if (n > 1) ac1 = lagProduct(d, n, 1) / ss;
    let best = -Infinity;
    for (let k = p.lagLo; k <= p.lagHi; k++) {
      const r = lagProduct(d, n, k) / ss;
      if (r > best) {
        best = r;
        peakLag = k;
      }
    }
    if (peakLag > 0) peak = best;
  }
  out[off + 16] = ac1;
  out[off + 17] = peakLag / p.rate;
  out[off + 18] = peak;

  // Spectrum (bins 1 … N/2).
  let domFreq = 0;
  let domPower = 0;
  let entropy = 0;
  let centroid = 0;
  const bands = p.bands;
  bands.fill(0);
  if (ss > 0) {
    powerSpectrum(p);
    const { power, M, freq, band } = p;
    let total = 0;
    let best = -Infinity;
    let bestK = 0;
    for (let k = 1; k <= M; k++) {
      const pk = power[k]!;
      total += pk;
      if (pk > best) {
        best = pk;
        bestK = k;
      }
    }
    if (total > 0) {
      domFreq = freq[bestK]!;
      domPower = best / total;
      let h = 0;
      let c = 0;
      for (let k = 1; k <= M; k++) {
        const pk = power[k]!;
        c += freq[k]! * pk;
        bands[band[k]!] += pk;
        if (pk > 0) {
          const s = pk / total;
          h -= s * Math.log(s);
        }
      }
      entropy = M > 1 ? h / Math.log(M) : 0;
      centroid = c / total;
      for (let b = 0; b < N_BANDS; b++) bands[b] = bands[b]! / total;
    }
  }
  out[off + 19] = domFreq;
  out[off + 20] = domPower;
  out[off + 21] = entropy;
  out[off + 22] = centroid;
  for (let b = 0; b < N_BANDS; b++) out[off + 23 + b] = bands[b]!;
}

/** Σ d[i]·d[i+k], i < n − k, in four running sums (four times faster than one: no add chain). */
function lagProduct(d: Float64Array, n: number, k: number): number {
  let s0 = 0;
  let s1 = 0;
  let s2 = 0;
  let s3 = 0;
  const m = n - k;
  let i = 0;
  for (; i + 3 < m; i += 4) {
    s0 += d[i]! * d[i + k]!;
    s1 += d[i + 1]! * d[i + 1 + k]!;
    s2 += d[i + 2]! * d[i + 2 + k]!;
    s3 += d[i + 3]! * d[i + 3 + k]!;
  }
  for (; i < m; i++) s0 += d[i]! * d[i + k]!;
  return s0 + s1 + (s2 + s3);
}

/**
 * Partially sorts v[lo..hi] (finite values) so that each index in `targets[ta..tb)` (ascending,
 * within [lo, hi]) holds the value a full ascending sort would put there: quickselect for several
 * order statistics at once (median-of-three pivot, insertion sort below 16 elements), which only
 * descends into the parts that hold a target. On windows of ~100 values it costs a third of
 * `Float64Array.prototype.sort`.
 */
function selectRange(v: Float64Array, lo: number, hi: number, targets: Int32Array, ta: number, tb: number): void {
  while (ta < tb && hi - lo > 16) {
    const mid = (lo + hi) >> 1;
    let a = v[lo]!;
    let b = v[mid]!;
    let c = v[hi]!;
    let t: number;
    if (b < a) (t = a), (a = b), (b = t);
    if (c < b) {
      (t = b), (b = c), (c = t);
      if (b < a) (t = a), (a = b), (b = t);
    }
    v[lo] = a;
    v[mid] = b;
    v[hi] = c;
    const pivot = b;
    let i = lo;
    let j = hi;
    while (i <= j) {
      while (v[i]! < pivot) i++;
      while (v[j]! > pivot) j--;
      if (i <= j) {
        t = v[i]!;
        v[i] = v[j]!;
        v[j] = t;
        i++;
        j--;
      }
    }
    // Now v[lo..j] <= pivot <= v[i..hi], and anything between j and i equals the pivot (in place).
    let m1 = ta;
    while (m1 < tb && targets[m1]! <= j) m1++;
    let m2 = m1;
    while (m2 < tb && targets[m2]! < i) m2++;
    // Recurse into the smaller side, loop on the larger: the stack stays O(log n).
    if (j - lo < hi - i) {
      selectRange(v, lo, j, targets, ta, m1);
      (lo = i), (ta = m2);
    } else {
      selectRange(v, i, hi, targets, m2, tb);
      (hi = j), (tb = m1);
    }
  }
  if (ta >= tb) return;
  for (let i = lo + 1; i <= hi; i++) {
    const t = v[i]!;
    let j = i - 1;
    while (j >= lo && v[j]! > t) {
      v[j + 1] = v[j]!;
      j--;
    }
    v[j + 1] = t;
  }
}

/**
 * Linear interpolation between order statistics at q·(n−1) (numpy's default), from an array
 * where `selectRange` put those order statistics in place.
 */
function quantileSelected(sorted: Float64Array, n: number, q: number): number {
  const pos = q * (n - 1);
  const lo = Math.floor(pos);
  const hi = Math.min(lo + 1, n - 1);
  const t = pos - lo;
  const a = sorted[lo]!;
  const b = sorted[hi]!;
  return t === 0 ? a : a + (b - a) * t;
}

/** Pearson correlation of channels a and b of one window (0 when either is constant). */
function correlation(data: Float64Array, base: number, n: number, channels: number, a: number, b: number): number {
  const a0 = data[base + a]!;
  const b0 = data[base + b]!;
  let varyA = false;
  let varyB = false;
  let sa = 0;
  let sb = 0;
  for (let s = 0; s < n; s++) {
    const va = data[base + s * channels + a]!;
    const vb = data[base + s * channels + b]!;
    sa += va;
    sb += vb;
    if (va !== a0) varyA = true;
    if (vb !== b0) varyB = true;
  }
  if (!varyA || !varyB) return 0;
  const ma = sa / n;
  const mb = sb / n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let s = 0; s < n; s++) {
    const da = data[base + s * channels + a]! - ma;
    const db = data[base + s * channels + b]! - mb;
    sab += da * db;
    saa += da * da;
    sbb += db * db;
  }
  // Deviations that underflow count as constant; NaN stays NaN.
  if (saa === 0 || sbb === 0) return 0;
  const r = sab / (Math.sqrt(saa) * Math.sqrt(sbb));
  return r > 1 ? 1 : r < -1 ? -1 : r;
}

/**
 * The window features of every row of `x` (rows are windows flattened step-major: channel `c`
 * at step `s` is `x.data[row * steps * channels + s * channels + c]`): `rows × names.length`,
 * columns in the order of `windowFeatureNames(shape)`.
 */
export function windowFeatures(x: Matrix, shape: WindowShape): Matrix {
  checkShape(shape);
  const { steps: n, channels } = shape;
  const width = n * channels;
  if (x.cols !== width)
    throw Errors.badData('', `window features expect rows of ${n} steps × ${channels} channels = ${width} values, got ${x.cols}`);
  const triples = findTriples(shape.channelNames);
  const nSeries = channels + triples.length;
  const cols = nSeries * NF + 3 * triples.length;
  const out = new Float64Array(x.rows * cols);
  const p = makePlan(n, shape.rate);
  const series = new Float64Array(n);
  const data = x.data;
  for (let r = 0; r < x.rows; r++) {
    const base = r * width;
    let off = r * cols;
    for (let c = 0; c < channels; c++) {
      for (let s = 0; s < n; s++) series[s] = data[base + s * channels + c]!;
      seriesFeatures(p, series, out, off);
      off += NF;
    }
    for (const t of triples) {
      const [ix, iy, iz] = t.axes;
      for (let s = 0; s < n; s++) {
        const o = base + s * channels;
        const vx = data[o + ix]!;
        const vy = data[o + iy]!;
        const vz = data[o + iz]!;
        series[s] = Math.sqrt(vx * vx + vy * vy + vz * vz);
      }
      seriesFeatures(p, series, out, off);
      off += NF;
    }
    for (const t of triples) {
      const [ix, iy, iz] = t.axes;
      out[off++] = correlation(data, base, n, channels, ix, iy);
      out[off++] = correlation(data, base, n, channels, ix, iz);
      out[off++] = correlation(data, base, n, channels, iy, iz);
    }
  }
  return { rows: x.rows, cols, data: out };
}
