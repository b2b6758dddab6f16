/**
 * A version's figures: ROC and precision-recall curves (uPlot, values on hover in the legend), the
 * reliability plot (before and after calibration), permutation importance bars, and for regression the predicted-versus-actual
 * heat grid and residuals by decile. Every figure comes from out-of-fold predictions stored with
 * the version; each has a text alternative and, where the numbers matter, a table beside it.
 */
import type { ComponentChildren } from 'preact';
import { useMemo, useState } from 'preact/hooks';
import type uPlot from 'uplot';
import { Chart, COLORS, type ChartOptions } from '../../components/chart';
import { Button, fmt, pct } from '../../components/ui';
import { fx, num } from './meanings';
import type { Importance, PrCurve, RegressionPlot, ReliabilityBin, RocCurve } from './types';

const GREY = '#6b7580';
const unit: uPlot.Scale = { time: false, range: [0, 1] };
const axis = (label: string): uPlot.Axis => ({ label, labelSize: 22, size: 44, stroke: '#3b4652', grid: { stroke: '#e6eaee', width: 1 }, ticks: { stroke: '#c8d0d8', width: 1 } });
const rate = (v: number | null | undefined) => (v === null || v === undefined ? '–' : fmt(v));

/** One curve of a ROC chart. */
export interface RocSeries {
  label: string;
  roc: RocCurve;
}

/**
 * Several curves with their own x values on one aligned x axis: every point of every curve, sorted
 * by x (stable, so each curve keeps its order among equal x), the other curves null there and
 * their lines drawn across the gaps.
 */
function mergeCurves(curves: { x: (number | null)[]; y: (number | null)[] }[]): { xs: number[]; ys: (number | null)[][]; src: number[][] } {
  const points: { x: number; c: number; i: number }[] = [];
  curves.forEach((cv, c) => cv.x.forEach((x, i) => x !== null && cv.y[i] !== null && points.push({ x, c, i })));
  points.sort((a, b) => a.x - b.x || a.c - b.c || a.i - b.i);
  const xs = points.map((p) => p.x);
  const ys = curves.map((cv, c) => points.map((p) => (p.c === c ? cv.y[p.i]! : null)));
  // src[c][k]: the index in curve c of merged point k (or -1).
  const src = curves.map((_, c) => points.map((p) => (p.c === c ? p.i : -1)));
  return { xs, ys, src };
}

/**
 * ROC curves (false positive rate → true positive rate) with the chance diagonal. Hovering shows
 * each curve's sensitivity and the threshold of the point; `marker` highlights an operating point
 * of the first curve (the threshold chosen beside the confusion matrix).
 */
export function RocChart(props: { curves: RocSeries[]; marker?: number | null; label: string; height?: number }) {
  const { curves, marker } = props;
  const merged = useMemo(() => mergeCurves(curves.map((c) => ({ x: c.roc.fpr, y: c.roc.tpr }))), [curves]);
  const options = useMemo<ChartOptions>(() => {
    const thr = (c: number, k: number | null) => {
      if (k === null) return null;
      const i = merged.src[c]![k]!;
      return i < 0 ? null : curves[c]!.roc.thresholds[i];
    };
    return {
      scales: { x: unit, y: { range: [0, 1] } },
      axes: [axis('False positive rate (1 − specificity)'), axis('True positive rate (sensitivity)')],
      cursor: { points: { size: 8 } },
      series: [
        { label: 'False positive rate', value: (_u, v) => rate(v) },
        ...curves.map((c, ci) => ({
          label: c.label,
          stroke: COLORS[ci]!,
          width: 2,
          spanGaps: true,
          points: { show: false },
          value: (_u: uPlot, v: number | null, _s: number, k: number | null) => {
            if (v === null || v === undefined) return '–';
            const t = thr(ci, k);
            return `${fmt(v)}${t === null || t === undefined ? '' : t > 1 ? ' (nothing flagged)' : ` at p ≥ ${fmt(t)}`}`;
          },
        })),
        { label: 'Chance', stroke: GREY, width: 1, dash: [5, 5], points: { show: false }, value: (_u: uPlot, v: number | null) => rate(v) },
        ...(marker !== undefined ? [{ label: 'Chosen threshold', stroke: COLORS[1]!, fill: COLORS[1]!, width: 0, paths: () => null, points: { show: true, size: 11, fill: COLORS[1]!, stroke: '#ffffff', width: 2 }, value: () => 'see the matrix' }] : []),
      ],
    };
  }, [curves, merged, marker !== undefined]);
  const data = useMemo<uPlot.AlignedData>(() => {
    const diag = merged.xs.map((x) => x);
    const base: (number | null)[][] = [merged.xs, ...merged.ys, diag];
    if (marker !== undefined) base.push(merged.xs.map((_, k) => (marker !== null && merged.src[0]![k] === marker ? merged.ys[0]![k]! : null)));
    return base as uPlot.AlignedData;
  }, [merged, marker]);
  return <Chart options={options} data={data} label={props.label} height={props.height ?? 300} />;
}

/** The precision-recall curve (recall → precision) with the no-skill line at the positive share. */
export function PrChart(props: { pr: PrCurve; prevalence: number | null; marker?: number | null; label: string }) {
  const { pr, prevalence, marker } = props;
  // sklearn's order is recall decreasing; uPlot wants x increasing.
  const rev = useMemo(() => {
    const n = pr.recall.length;
    const idx = Array.from({ length: n }, (_, k) => n - 1 - k);
    return { x: idx.map((i) => pr.recall[i]!), y: idx.map((i) => pr.precision[i]!), t: idx.map((i) => (i < pr.thresholds.length ? pr.thresholds[i]! : null)), orig: idx };
  }, [pr]);
  const options = useMemo<ChartOptions>(
    () => ({
      scales: { x: unit, y: { range: [0, 1] } },
      axes: [axis('Recall (sensitivity)'), axis('Precision (PPV)')],
      cursor: { points: { size: 8 } },
      series: [
        { label: 'Recall', value: (_u, v) => rate(v) },
        {
          label: 'Precision',
          stroke: COLORS[0]!,
          width: 2,
          points: { show: false },
          value: (_u: uPlot, v: number | null, _s: number, k: number | null) => (v === null || v === undefined ? '–' : `${fmt(v)}${k !== null && rev.t[k] !== null && rev.t[k] !== undefined ? ` at p ≥ ${fmt(rev.t[k])}` : ''}`),
        },
        ...(prevalence !== null ? [{ label: 'No skill (positive share)', stroke: GREY, width: 1, dash: [5, 5], points: { show: false }, value: () => fmt(prevalence) }] : []),
        ...(marker !== undefined ? [{ label: 'Chosen threshold', stroke: COLORS[1]!, fill: COLORS[1]!, width: 0, paths: () => null, points: { show: true, size: 11, fill: COLORS[1]!, stroke: '#ffffff', width: 2 }, value: () => 'see the matrix' }] : []),
      ],
    }),
    [rev, prevalence, marker !== undefined],
  );
  const data = useMemo<uPlot.AlignedData>(() => {
    const d: (number | null)[][] = [rev.x, rev.y];
    if (prevalence !== null) d.push(rev.x.map(() => prevalence));
    if (marker !== undefined) d.push(rev.orig.map((i, k) => (marker !== null && i === marker ? rev.y[k]! : null)));
    return d as uPlot.AlignedData;
  }, [rev, prevalence, marker]);
  return <Chart options={options} data={data} label={props.label} height={300} />;
}

/** The PR point for threshold t: the first (lowest) curve threshold ≥ t, in sklearn's index. */
export function prIndex(pr: PrCurve, t: number): number | null {
  // thresholds increase; point k has threshold k; the final point (recall 0) has none.
  for (let k = 0; k < pr.thresholds.length; k++) if (pr.thresholds[k]! >= t) return k;
  return pr.recall.length - 1;
}

/**
 * Observed share of positives against the mean predicted probability per bin, with the diagonal.
 * With `before` (the uncalibrated model's bins) both curves are drawn: before in grey, dashed with
 * hollow points, after in the main colour, labelled `afterLabel`.
 */
export function ReliabilityChart(props: { bins: ReliabilityBin[]; before?: ReliabilityBin[]; afterLabel?: string; label: string }) {
  const { bins, before, afterLabel } = props;
  // The two curves' bins have their own mean predictions: one sorted x axis holding both, each
  // curve null at the other's points (drawn across the gaps), the diagonal from corner to corner.
  const merged = useMemo(() => {
    const curves = (before ? [bins, before] : [bins]).map((bs) => ({ x: bs.map((b) => b.meanPredicted), y: bs.map((b) => b.observed) }));
    const m = mergeCurves(curves);
    return { xs: [0, ...m.xs, 1], ys: m.ys.map((y) => [null, ...y, null]), src: m.src.map((s) => [-1, ...s, -1]) };
  }, [bins, before]);
  const options = useMemo<ChartOptions>(() => {
    const value = (c: number, of: ReliabilityBin[]) => (_u: uPlot, v: number | null, _s: number, k: number | null) => {
      if (v === null || v === undefined || k === null) return '–';
      const b = of[merged.src[c]![k] ?? -1];
      return b ? `${pct(v)} of ${b.count} rows (bin ${fmt(b.lower, 1)}–${fmt(b.upper, 1)})` : pct(v);
    };
    return {
      scales: { x: unit, y: { range: [0, 1] } },
      axes: [axis('Mean predicted probability'), axis('Observed share')],
      cursor: { points: { size: 8 } },
      series: [
        { label: 'Predicted', value: (_u, v) => rate(v) },
        { label: 'Perfect calibration', stroke: GREY, width: 1, dash: [5, 5], points: { show: false }, value: (_u: uPlot, v: number | null) => rate(v) },
        ...(before
          ? [{ label: 'Before calibration', stroke: GREY, width: 1.5, dash: [2, 3], spanGaps: true, points: { show: true, size: 7, fill: '#ffffff', stroke: GREY, width: 1.5 }, value: value(1, before) }]
          : []),
        { label: before ? (afterLabel ?? 'After calibration') : 'Observed', stroke: COLORS[0]!, width: 2, spanGaps: true, points: { show: true, size: 8, fill: COLORS[0]! }, value: value(0, bins) },
      ],
    };
  }, [bins, before, afterLabel, merged]);
  const data = useMemo<uPlot.AlignedData>(
    () => [merged.xs, merged.xs, ...(merged.ys.length > 1 ? [merged.ys[1]!] : []), merged.ys[0]!] as uPlot.AlignedData,
    [merged],
  );
  return <Chart options={options} data={data} label={props.label} height={300} />;
}

/** Residual (predicted − actual) mean ± SD by decile of the prediction, with the zero line. */
export function ResidualChart(props: { plot: RegressionPlot; label: string }) {
  const r = props.plot.residuals;
  const options = useMemo<ChartOptions>(
    () => ({
      scales: { x: { time: false } },
      axes: [axis(`Mean prediction of the decile`), axis('Residual (predicted − actual)')],
      cursor: { points: { size: 8 } },
      series: [
        { label: 'Predicted', value: (_u, v) => (v === null || v === undefined ? '–' : num(v)) },
        {
          label: 'Mean residual',
          stroke: COLORS[0]!,
          width: 2,
          points: { show: true, size: 8, fill: COLORS[0]! },
          value: (_u: uPlot, v: number | null, _s: number, k: number | null) => (v === null || v === undefined || k === null ? '–' : `${num(v)} (${r[k]?.count ?? 0} rows)`),
        },
        { label: '+1 SD', stroke: COLORS[2]!, width: 1, dash: [4, 4], points: { show: false }, value: (_u: uPlot, v: number | null) => (v === null || v === undefined ? '–' : num(v)) },
        { label: '−1 SD', stroke: COLORS[2]!, width: 1, dash: [4, 4], points: { show: false }, value: (_u: uPlot, v: number | null) => (v === null || v === undefined ? '–' : num(v)) },
        { label: 'No error', stroke: GREY, width: 1, points: { show: false }, value: () => '0' },
      ],
    }),
    [r],
  );
  const data = useMemo<uPlot.AlignedData>(
    () => [r.map((g) => g.predictedMean), r.map((g) => g.residualMean), r.map((g) => g.residualMean + g.residualStd), r.map((g) => g.residualMean - g.residualStd), r.map(() => 0)] as uPlot.AlignedData,
    [r],
  );
  return <Chart options={options} data={data} label={props.label} height={260} />;
}

/** Sequential blues: [background, text] pairs whose text contrast is ≥ 4.5:1. */
export const HEAT: [string, string][] = [
  ['#ffffff', '#1d2733'],
  ['#eef4fb', '#1d2733'],
  ['#cfe1f4', '#1d2733'],
  ['#9ec3e8', '#1d2733'],
  ['#2f6fb0', '#ffffff'],
  ['#0b4f8a', '#ffffff'],
];
/** The shade of a share in [0, 1]: empty, then steps at 10%, 25%, 50%, 75%. */
export function heat(share: number): [string, string] {
  if (!(share > 0)) return HEAT[0]!;
  return HEAT[share < 0.1 ? 1 : share < 0.25 ? 2 : share < 0.5 ? 3 : share < 0.75 ? 4 : 5]!;
}

/**
 * Predicted versus actual as a heat grid of counts (row = actual bin, column = predicted bin), with
 * the y = x diagonal where a perfect model would put every row. SVG, so it scales with its box;
 * each filled cell names its ranges and count on hover.
 */
export function HeatGrid(props: { plot: RegressionPlot; label: string }) {
  const { min, max, bins, counts } = props.plot;
  const L = 52;
  const B = 44;
  const T = 10;
  const S = 300;
  const tick = (v: number) => String(Number(v.toPrecision(4)));
  const cell = S / bins;
  const step = (max - min) / bins;
  let top = 1;
  for (const n of counts) top = Math.max(top, n);
  const ticks = Array.from({ length: 5 }, (_, k) => min + ((max - min) * k) / 4);
  const pos = (v: number) => ((v - min) / (max - min)) * S;
  const cells: ComponentChildren[] = [];
  for (let r = 0; r < bins; r++) {
    for (let c = 0; c < bins; c++) {
      const n = counts[r * bins + c] ?? 0;
      if (!n) continue;
      const [fill] = HEAT[1 + Math.min(4, Math.floor(Math.sqrt(n / top) * 5))] ?? HEAT[5]!;
      cells.push(
        <rect key={`${r}-${c}`} x={L + c * cell} y={S - (r + 1) * cell} width={cell} height={cell} fill={fill}>
          <title>{`actual ${num(min + r * step)}–${num(min + (r + 1) * step)}, predicted ${num(min + c * step)}–${num(min + (c + 1) * step)}: ${n} row${n === 1 ? '' : 's'}`}</title>
        </rect>,
      );
    }
  }
  return (
    <figure class="heatgrid">
      <svg viewBox={`0 ${-T} ${L + S + 24} ${S + B + T}`} role="img" aria-label={props.label}>
        <rect x={L} y={0} width={S} height={S} fill="#fff" stroke="#c8d0d8" />
        {cells}
        <line x1={L} y1={S} x2={L + S} y2={0} stroke="#b42318" stroke-width={1.5} stroke-dasharray="6 4" />
        {ticks.map((t) => (
          <g key={t}>
            <text x={L + pos(t)} y={S + 14} text-anchor="middle" class="tick">{tick(t)}</text>
            <text x={L - 4} y={S - pos(t) + 4} text-anchor="end" class="tick">{tick(t)}</text>
          </g>
        ))}
        <text x={L + S / 2} y={S + 36} text-anchor="middle" class="axis-label">Predicted</text>
        <text x={12} y={S / 2} text-anchor="middle" class="axis-label" transform={`rotate(-90 12 ${S / 2})`}>Actual</text>
      </svg>
      <figcaption class="hint">Darker cells hold more rows; the dashed red line is y = x (a perfect prediction). Hover a cell for its ranges and count.</figcaption>
    </figure>
  );
}

/**
 * Permutation importance: how much the score drops when a column is shuffled, ± its SD over
 * folds × repeats, as horizontal bars with whiskers. The top 15 first; the rest on request.
 */
export function ImportanceBars(props: { importance: Importance; metricLabel: string }) {
  const { features, metric, repeats } = props.importance;
  const [all, setAll] = useState(false);
  const shown = all ? features : features.slice(0, 15);
  let lo = 0;
  let hi = 0;
  for (const f of features) {
    lo = Math.min(lo, f.drop - f.std);
    hi = Math.max(hi, f.drop + f.std);
  }
  const span = hi - lo || 1;
  // One number of decimals for every row, enough for three significant digits of the largest.
  const digits = Math.min(8, Math.max(2, 2 - Math.floor(Math.log10(Math.max(hi, -lo) || 1))));
  const x = (v: number) => `${(((v - lo) / span) * 100).toFixed(2)}%`;
  return (
    <>
      <p class="hint">
        Drop in {props.metricLabel} when the column is shuffled within each validation fold ({repeats} shuffle{repeats === 1 ? '' : 's'} per fold), mean ± SD. Bigger drops: the model leans on the column more. A drop near 0 (or below) means the model does not need it, not that it is unrelated to the outcome: a correlated column can stand in for it.
      </p>
      <ul class="importance" aria-label={`Permutation importance (${metric}), largest first`}>
        {shown.map((f) => (
          <li key={f.feature} class="imp-row">
            <span class="imp-name">{f.feature}</span>
            <span class="imp-value">
              {fx(f.drop, digits)} ± {fx(f.std, digits)}
            </span>
            <span class="imp-track" aria-hidden="true">
              <span class="imp-zero" style={{ left: x(0) }} />
              <span class="imp-bar" style={{ left: f.drop >= 0 ? x(0) : x(f.drop), width: `${((Math.abs(f.drop) / span) * 100).toFixed(2)}%` }} />
              <span class="imp-whisker" style={{ left: x(f.drop - f.std), width: `${(((2 * f.std) / span) * 100).toFixed(2)}%` }} />
            </span>
          </li>
        ))}
      </ul>
      {features.length > 15 ? (
        <Button onClick={() => setAll(!all)} aria-expanded={all}>
          {all ? 'Show the top 15' : `Show all ${features.length} columns`}
        </Button>
      ) : null}
    </>
  );
}
